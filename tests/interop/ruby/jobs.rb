# frozen_string_literal: true

# Ruby job classes for the interop suite, loaded by a real Sidekiq 6.4 server:
#
#   sidekiq -r tests/interop/ruby/jobs.rb -q default -c 5
#
# with REDIS_URL (the suite's redis-server) and LEDGER_URL (database 1 of it) set.
# Every run is written to the ledger in the shape the Python twins in
# tests/apps/interop_jobs.py use, so a test reads outcomes the same way whichever side ran:
#
#   HINCRBY done <jid> 1        a completed run
#   HSET args <jid> <json>      the arguments exactly as perform received them
#   HSET runner <jid> ruby      which side ran it ("python" for the twins)
#   HINCRBY attempts <jid> 1    every start of InteropFlaky, InteropDoomed and InteropBlock
#
# Class name             | Python twin            | what it does
# InteropRecord          | apps.interop_jobs      | records its run
# InteropFlaky           | apps.interop_jobs      | fails its first attempt, then records
# InteropDoomed          | apps.interop_jobs      | always fails; retry: 0, so straight to dead
# InteropBlock           | apps.interop_jobs      | keeps its thread busy until the ledger key
#                        |                        | `release` exists (at most 30 s), then records
# RubyOnlyRecord         | none (Python only enqueues it)

require "json"
require "redis"
require "sidekiq"
require "sidekiq/scheduled"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
# The ledger is the tests' own bookkeeping, not the system under test: a generous timeout, so
# a loaded CI host cannot make a recorded run raise (a read timeout after EXEC would fail a
# job that did run, and leave it in the retry set).
LEDGER = Redis.new(url: ENV.fetch("LEDGER_URL"), timeout: 60)

Sidekiq.configure_server do |config|
  config.redis = { url: ENV.fetch("REDIS_URL") }
  # 6.4 polls `schedule` and `retry` about every 5 s per process; poll often instead, so a
  # scheduled job runs within a fraction of a second.
  config.options[:poll_interval_average] = 0.2
end

# 6.4's poller also waits up to 5 random seconds before its first poll. The tests start a
# fresh server each time, so start polling at once.
module InteropPollAtOnce
  private

  def initial_wait; end
end
Sidekiq::Scheduled::Poller.prepend(InteropPollAtOnce)

class InteropError < StandardError; end

module InteropLedger
  def self.record(jid, args)
    LEDGER.multi do |tx|
      tx.hincrby("done", jid, 1)
      tx.hset("args", jid, JSON.generate(args))
      tx.hset("runner", jid, "ruby")
    end
  end

  def self.attempt(jid)
    LEDGER.hincrby("attempts", jid, 1)
  end
end

class InteropRecord
  include Sidekiq::Job

  def perform(*args)
    InteropLedger.record(jid, args)
  end
end

class RubyOnlyRecord < InteropRecord
end

class InteropFlaky
  include Sidekiq::Job
  sidekiq_options backtrace: true

  def perform(*args)
    if InteropLedger.attempt(jid) == 1
      raise InteropError, "first attempt of #{jid} fails on purpose"
    end
    InteropLedger.record(jid, args)
  end
end

# InteropFlaky whose retry is due an hour later: a test reading the retry set finds it
# there however long a loaded machine takes (the default delay is 15-24 s).
class InteropParked < InteropFlaky
  sidekiq_retry_in { |_count, _exception| 3600 }
end

class InteropDoomed
  include Sidekiq::Job
  sidekiq_options retry: 0, backtrace: true

  def perform(*_args)
    InteropLedger.attempt(jid)
    raise InteropError, "#{jid} always fails"
  end
end

class InteropBlock
  include Sidekiq::Job

  # The longest it waits to be released, so that a broken test cannot hang a worker.
  LIMIT = 30.0

  def perform(*args)
    InteropLedger.attempt(jid)
    deadline = ::Process.clock_gettime(::Process::CLOCK_MONOTONIC) + LIMIT
    until LEDGER.exists?("release") || ::Process.clock_gettime(::Process::CLOCK_MONOTONIC) > deadline
      sleep 0.01
    end
    InteropLedger.record(jid, args)
  end
end
