#!/usr/bin/python3
"""Scale-out on one NATS JetStream (issue 13), two parts in one run:

throughput: 1, 2 and 3 segrel-server replicas (one CPU worker and one LibTorch thread each) on one shared spool and
  one nats-server; N fixture jobs submitted at once, round-robin over the replicas; jobs/s from the first submit to
  the last job done, and the jobs each replica ran. This machine's cores bound it: the replicas, NATS and the
  clients share them.
latency: with the machine otherwise idle, one fixture job at a time, submit to DONE as its client sees it (Watch),
  against one in-process segrel-server and against one cluster replica; the median difference is what the
  distributed queue adds per job (goal <= 20 ms).

Usage (from the repository root, after scripts/build): bench/scaleout_bench.py [--jobs 60] [--latency-jobs 30]
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import segrel_harness as harness  # noqa: E402

SERVER = os.path.join(ROOT, "build", "server", "segrel-server")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "data")


def start(pb_grpc, grpc, spool, *flags):
    return harness.ServerProcess(SERVER, FIXTURES, spool, "--threads=1", "--queue-capacity=256", *flags,
                                 grpc_module=grpc, stubs=pb_grpc)


def run_job(pb, replica, watcher, job):
    replica.stub.Submit(harness.submit_messages(pb, FIXTURES, job))
    states = [m.status.state for m in watcher.stub.Watch(pb.WatchRequest(job_id=job), timeout=300)
              if m.HasField("status")]
    assert states[-1] == pb.DONE, (job, states)


def throughput(pb, pb_grpc, grpc, replicas_wanted, jobs, temp):
    folder = tempfile.mkdtemp(prefix=f"throughput{replicas_wanted}.", dir=temp)
    nats = harness.NatsServer(folder)
    spool = os.path.join(folder, "spool")
    replicas = [start(pb_grpc, grpc, spool, f"--queue={nats.url}", f"--replica-name=r{i}")
                for i in range(replicas_wanted)]
    try:
        run_job(pb, replicas[0], replicas[0], "warm-up")  # each replica loads the model at its first job
        for i, r in enumerate(replicas[1:], 1):
            run_job(pb, r, r, f"warm-up-{i}")
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: run_job(pb, replicas[i % len(replicas)], replicas[(i + 1) % len(replicas)],
                                            f"job-{i}"), range(jobs)))
        seconds = time.monotonic() - began
        ran = [sum(1 for line in r.lines if re.search(r"event=started job=job-", line)) for r in replicas]
        return jobs / seconds, ran
    finally:
        for r in replicas:
            r.kill()
        nats.stop()


def latency(pb, pb_grpc, grpc, jobs, temp, *flags):
    folder = tempfile.mkdtemp(prefix="latency.", dir=temp)
    nats = harness.NatsServer(folder) if flags else None
    cluster = [f"--queue={nats.url}", "--replica-name=r0"] if nats else []
    server = start(pb_grpc, grpc, os.path.join(folder, "spool"), *cluster)
    try:
        run_job(pb, server, server, "warm-up")
        times = []
        for i in range(jobs):
            began = time.monotonic()
            run_job(pb, server, server, f"latency-{i}")
            times.append(time.monotonic() - began)
        return statistics.median(times)
    finally:
        server.kill()
        if nats:
            nats.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--latency-jobs", type=int, default=30)
    args = parser.parse_args()
    temp = tempfile.mkdtemp(prefix="scaleout_bench.")
    grpc, pb, pb_grpc = harness.load_stubs(os.path.join(ROOT, "proto"), temp)
    try:
        print(f"throughput: {args.jobs} fixture jobs at once, 1 CPU worker and 1 thread per replica, {os.cpu_count()} "
              "cores")
        base = None
        for count in (1, 2, 3):
            rate, ran = throughput(pb, pb_grpc, grpc, count, args.jobs, temp)
            base = base or rate
            print(f"  {count} replica(s): {rate:6.1f} jobs/s  ({rate / base:.2f}x one replica)  jobs per replica {ran}")
        in_process = latency(pb, pb_grpc, grpc, args.latency_jobs, temp)
        distributed = latency(pb, pb_grpc, grpc, args.latency_jobs, temp, "cluster")
        print(f"latency: one job at a time, submit to DONE, median of {args.latency_jobs}")
        print(f"  in-process queue {in_process * 1000:7.1f} ms")
        added = (distributed - in_process) * 1000
        print(f"  NATS JetStream   {distributed * 1000:7.1f} ms   ({added:+.1f} ms per job)")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
