# frozen_string_literal: true

# The bench job's own work, alone: BenchJob#perform (one INCR on the counter through the
# job's connection pool) run COUNT times in a bare loop on one thread, with no Sidekiq
# around it. Prints one JSON line with the CPU time per job, the twin of
# bench/agents/job_alone.py:  ruby job_alone.rb --count N
require "json"
require_relative "bench_job"

WARM_UP = 200

def cpu_and_wall
  [Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID),
   Process.clock_gettime(Process::CLOCK_MONOTONIC)]
end

count = Integer(ARGV.fetch(ARGV.index("--count") + 1))
job = BenchJob.new
WARM_UP.times { |i| job.perform(i) }
cpu, wall = cpu_and_wall
count.times { |i| job.perform(i) }
cpu_end, wall_end = cpu_and_wall
puts JSON.generate({ seconds: wall_end - wall, count: count,
                     cpu_us: (cpu_end - cpu) / count * 1e6 })
$stdout.flush
