# frozen_string_literal: true

# Ruby Sidekiq's bench job, the twin of bench/agents/common.py: one INCR on the counter in
# database 1 (apart from Sidekiq's own database), plus "<push time> <start time>" when the
# job carries a push time. Worker: sidekiq -r ./bench/sidekiq/bench_job.rb -c 10 -q default
require "sidekiq"
require "connection_pool"
require "redis"

# Per-job log lines halve Sidekiq's speed; every system in the bench runs at WARNING.
Sidekiq.logger.level = Logger::WARN
# Debian pairs Sidekiq 6.4.1 with redis-rb 4.8, which warns on stderr at every BRPOP Sidekiq
# makes (about one per job): a per-job log line in all but name. Sidekiq on the redis-rb it
# was released with prints nothing; so should the bench.
Redis.silence_deprecations = true

module Bench
  DONE_KEY = "bench:done"
  LATENCY_KEY = "bench:latency"
  # A pool as large as the worker's concurrency, as each Python thread gets its own
  # connection from redis-py's pool: a single shared client would serialise the threads.
  COUNTER = ConnectionPool.new(size: 10, timeout: 5) do
    Redis.new(url: ENV.fetch("BENCH_COUNTER_URL"))
  end
end

class BenchJob
  include Sidekiq::Worker
  sidekiq_options retry: false, queue: "default"

  def perform(index, pushed_at = nil)
    started = Time.now.to_f
    Bench::COUNTER.with do |redis|
      redis.rpush(Bench::LATENCY_KEY, "#{pushed_at} #{started}") if pushed_at
      redis.incr(Bench::DONE_KEY)
    end
  end
end
