# frozen_string_literal: true

# Ruby Sidekiq's pusher, the twin of bench/agents/common.py:
#   ruby push.rb single --count N | bulk --count N | latency --gaps FILE
# Prints one JSON line. REDIS_URL names Sidekiq's Redis.
require "json"
require_relative "bench_job"

BATCH = 1000

def clock
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def emit(seconds, count, extra = {})
  puts JSON.generate({ seconds: seconds, count: count }.merge(extra))
  $stdout.flush
end

def push_single(count)
  start = clock
  count.times { |i| BenchJob.perform_async(i) }
  emit(clock - start, count, bulk_api: false)
end

def push_bulk(count)
  batches = (0...count).each_slice(BATCH).map { |slice| slice.map { |i| [i] } }
  start = clock
  batches.each { |args| Sidekiq::Client.push_bulk("class" => BenchJob, "args" => args) }
  emit(clock - start, count, bulk_api: true)
end

def push_latency(path)
  gaps = File.readlines(path).map(&:strip).reject(&:empty?).map(&:to_f)
  gaps.each_with_index do |gap, i|
    sleep(gap)
    BenchJob.perform_async(i, Time.now.to_f)
  end
  emit(0.0, gaps.size)
end

mode, _flag, arg = ARGV # the same arguments as bench/agents/push.py
case mode
when "single" then push_single(Integer(arg))
when "bulk" then push_bulk(Integer(arg))
when "latency" then push_latency(arg)
else abort("usage: push.rb single --count N | bulk --count N | latency --gaps FILE")
end
