#!/usr/bin/python3
"""Scale-out: three segrel-server replicas on one shared spool share one job queue on a real nats-server with
JetStream (started here on a free loopback port, its store in a temporary folder, stopped by PID). Jobs submitted to
one replica are watched on another and run wherever a worker is free; a replica killed mid-job has its job run by
another; a cancel sent to a third replica stops the worker running it; NATS restarting loses no accepted job; a full
cluster queue answers RESOURCE_EXHAUSTED with a retry hint. Exit 77 (skipped) without nats-server.

Usage (ctest runs it): scaleout_test.py SEGREL_SERVER SEGREL PROTO_DIR FIXTURE_DIR REPOSITORY WORK_DIR
"""
import collections
import concurrent.futures
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest
import urllib.request

import segrel_harness as harness

if not os.access(harness.NATS_SERVER, os.X_OK):
    print(f"scaleout_test: {harness.NATS_SERVER} is not installed (Debian's nats-server; scripts/install-deps): "
          "not run")
    sys.exit(77)

SERVER, SEGREL, PROTO_DIR, FIXTURES, REPOSITORY, WORK = sys.argv[1:7]
del sys.argv[1:7]
grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)
ACK_WAIT_S = 2  # a killed replica's job goes to another this long after its last renewal
WATCH_S = 180  # the longest a job is watched: a watch that does not end is a failure, not a hang


class ScaleOutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(prefix="scaleout.", dir=WORK)
        cls.nats = harness.NatsServer(cls.temp)
        # One repository with the fixture model (milliseconds a job) and the bundled ms-flair4 (seconds a job).
        cls.repository = os.path.join(cls.temp, "models")
        os.makedirs(cls.repository)
        os.symlink(os.path.join(FIXTURES, "bundle"), os.path.join(cls.repository, "unet-bn-test"))
        os.symlink(os.path.join(REPOSITORY, "models", "ms-flair4"), os.path.join(cls.repository, "ms-flair4"))
        cls.spool = os.path.join(cls.temp, "spool")  # the volume every replica mounts
        cls.replicas = [cls.start_replica(f"r{i}") for i in range(3)]
        cls.slow_study = cls.window_of_patient19()

    @classmethod
    def start_replica(cls, name, *flags):
        given = {flag.split("=")[0] for flag in flags}
        defaults = [flag for flag in ("--queue-capacity=64", f"--queue-ack-wait={ACK_WAIT_S}s", "--threads=1")
                    if flag.split("=")[0] not in given]
        return harness.ServerProcess(SERVER, cls.repository, cls.spool, f"--queue={cls.nats.url}",
                                     f"--replica-name={name}", *defaults, *flags, grpc_module=grpc, stubs=pb_grpc)

    @classmethod
    def tearDownClass(cls):
        for replica in cls.replicas:
            if replica.process.poll() is None:
                replica.kill()
        cls.nats.stop()
        shutil.rmtree(cls.temp, ignore_errors=True)

    @classmethod
    def window_of_patient19(cls):
        """One 128-cube window of the bundled study, for ms-flair4 jobs that run for seconds."""
        import nibabel
        folder = os.path.join(cls.temp, "window")
        os.makedirs(folder)
        for sequence in ("T1", "T1POST", "T2", "FLAIR"):
            image = nibabel.load(os.path.join(REPOSITORY, "data", "ms-lesjak", "patient19", f"{sequence}.nii.gz"))
            nibabel.save(image.slicer[27:155, 45:173, 27:155], os.path.join(folder, f"{sequence}.nii.gz"))
        return folder

    def slow_messages(self, job_id):
        """The Submit messages of an ms-flair4 job on the window."""
        files = [(name, os.path.join(self.slow_study, f"{name}.nii.gz")) for name in ("T1", "T1POST", "T2", "FLAIR")]
        return harness.submit_messages(pb, FIXTURES, job_id, model="ms-flair4", chunk=1 << 20, files=files)

    def reference(self):
        return harness.analyze_reference(SEGREL, FIXTURES, os.path.join(self.temp, "analyze"))

    def events(self, event, job):
        """The replicas whose audit trail has `event` for `job`, one entry per line."""
        pattern = re.compile(rf"segrel-audit event={event} job={re.escape(job)} ")
        return [r for r in self.replicas for line in list(r.lines) if pattern.search(line)]

    def wait_for_event(self, event, job, timeout=120):
        deadline = time.monotonic() + timeout
        while not self.events(event, job):
            self.assertLess(time.monotonic(), deadline, f"no {event} event for {job}")
            time.sleep(0.05)
        return self.events(event, job)[0]

    def test_1_jobs_submitted_anywhere_run_anywhere_and_are_watched_anywhere(self):
        options = pb.AnalysisOptions(seed=5, maps=True, no_pictures=True)
        ids = [f"spread-{i}" for i in range(30)]

        def submit(i):  # at once, as many clients would: the queue fills faster than the jobs run
            return self.replicas[i % 3].stub.Submit(harness.submit_messages(pb, FIXTURES, ids[i], options=options))
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            self.assertEqual([response.job_id for response in pool.map(submit, range(30))], ids)
        for i, job in enumerate(ids):
            watcher = self.replicas[(i + 1) % 3]  # never the replica that accepted it
            out = os.path.join(self.temp, "spread", job)
            states, files = harness.watch(pb, watcher.stub, job, out, timeout=WATCH_S)
            self.assertEqual(states[-1].state, pb.DONE, f"{job}: {states[-1].message}")
            self.assertEqual(harness.same_outputs(out, self.reference()), [], job)
        ran = collections.Counter(self.replicas.index(r) for job in ids for r in self.events("started", job))
        ended = [len(self.events("ended", job)) for job in ids]
        print(f"scaleout_test: jobs run per replica {dict(sorted(ran.items()))}")
        self.assertEqual(sum(ran.values()), 30, "each job ran once")
        self.assertEqual(ended, [1] * 30, "each job ended once")
        self.assertEqual(sorted(ran), [0, 1, 2], "every replica ran at least one job")
        # Every replica exports the cluster's queue alike: empty now; and what its own workers took.
        taken = 0
        for replica in self.replicas:
            metrics = self.scrape(replica, waiting=0, running=0)
            self.assertEqual((metrics["segrel_cluster_jobs_waiting"], metrics["segrel_cluster_jobs_running"]), (0, 0))
            taken += metrics["segrel_cluster_jobs_taken_total"]
        self.assertEqual(taken, 30)

    def scrape(self, replica, **wanted):
        """REPLICA's unlabelled segrel_cluster_* series, once they show WANTED (the gauges follow the stream about
        every second) or after 10 s."""
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=10) as answer:
                text = answer.read().decode()
            values = {name: float(value) for name, value in re.findall(r"(?m)^(segrel_cluster_\w+) (\S+)$", text)}
            if all(values.get(f"segrel_cluster_jobs_{k}") == v for k, v in wanted.items()) or \
                    time.monotonic() > deadline:
                return values
            time.sleep(0.2)

    def test_2_a_cancel_sent_to_a_third_replica_stops_the_worker_running_the_job(self):
        accepting = self.replicas[0]
        accepting.stub.Submit(self.slow_messages("cancel-me"))
        runner = self.wait_for_event("started", "cancel-me")
        third = next(r for r in self.replicas if r is not accepting and r is not runner)
        third.stub.Cancel(pb.CancelRequest(job_id="cancel-me"))
        states, _ = harness.watch(pb, third.stub, "cancel-me", os.path.join(self.temp, "cancelled"), timeout=WATCH_S)
        self.assertEqual(states[-1].state, pb.CANCELLED, states[-1].message)
        ended = self.wait_for_event("ended", "cancel-me", timeout=60)
        self.assertIs(ended, runner, "the replica that ran it ended it")
        self.assertRegex(runner.rest(), r"event=ended job=cancel-me \S+.*code=CANCELLED")

    def test_3_a_replica_killed_mid_job_has_its_job_finished_by_another(self):
        self.replicas[1].stub.Submit(self.slow_messages("killed-mid-job"))
        victim = self.wait_for_event("started", "killed-mid-job")
        time.sleep(1)  # into the analysis
        index = self.replicas.index(victim)
        victim.kill()
        self.addCleanup(lambda: self.replicas.__setitem__(index, self.start_replica(f"r{index}")))  # three again
        survivor = self.replicas[(index + 1) % 3]
        out = os.path.join(self.temp, "redelivered")
        states, files = harness.watch(pb, survivor.stub, "killed-mid-job", out, timeout=WATCH_S)
        self.assertEqual(states[-1].state, pb.DONE, states[-1].message)
        self.assertIn("relevance.json", files)
        self.assertIn("segmentation.nii.gz", files)
        runs = self.events("started", "killed-mid-job")
        self.assertEqual(len(runs), 2, "taken by the victim, then by one other replica")
        self.assertIsNot(self.wait_for_event("ended", "killed-mid-job"), victim)
        time.sleep(1)
        self.assertEqual(len(self.events("ended", "killed-mid-job")), 1, "reported once")
        folders = [name for name in os.listdir(self.spool) if name.startswith("killed-mid-job.")]
        self.assertEqual(len(folders), 1, "one job, one folder")
        self.assertFalse(os.path.exists(os.path.join(self.spool, folders[0], "input")), "its inputs are gone")

    def test_4_nats_restarting_loses_no_accepted_job(self):
        ids = [f"through-restart-{i}" for i in range(9)]
        for i, job in enumerate(ids):
            self.replicas[i % 3].stub.Submit(harness.submit_messages(pb, FIXTURES, job))
        self.nats.stop()
        time.sleep(1)
        self.nats.start()
        for i, job in enumerate(ids):
            watcher = self.replicas[(i + 2) % 3]
            states, _ = harness.watch(pb, watcher.stub, job, os.path.join(self.temp, job), timeout=WATCH_S)
            self.assertEqual(states[-1].state, pb.DONE, f"{job}: {states[-1].message}")
        self.assertEqual([len(self.events("ended", job)) for job in ids], [1] * 9)

    def test_5_a_full_cluster_queue_answers_resource_exhausted_with_a_retry_hint(self):
        # An accept-only replica whose capacity (2 jobs queued or running in the cluster) is the stream's from now on.
        front = self.start_replica("front", "--role=accept", "--queue-capacity=2")
        self.replicas.append(front)
        self.assertIn("accepts uploads", "".join(front.start_lines))
        # The jobs of the tests before have all left the queue (a completion NATS missed while it restarted is
        # completed when the job comes round again, after the ack wait).
        before = self.scrape(front, waiting=0, running=0)
        self.assertEqual((before["segrel_cluster_jobs_waiting"], before["segrel_cluster_jobs_running"]), (0, 0))
        for job in ("full-1", "full-2"):
            front.stub.Submit(self.slow_messages(job))
        with self.assertRaises(grpc.RpcError) as refused:
            front.stub.Submit(harness.submit_messages(pb, FIXTURES, "full-3"))
        self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("segrel-retry-after-ms", dict(refused.exception.trailing_metadata() or ()))
        for job in ("full-1", "full-2"):
            front.stub.Cancel(pb.CancelRequest(job_id=job))
        for job in ("full-1", "full-2"):
            states, _ = harness.watch(pb, front.stub, job, os.path.join(self.temp, job), timeout=WATCH_S)
            self.assertEqual(states[-1].state, pb.CANCELLED)
        started = self.events("started", "full-1") + self.events("started", "full-2")
        self.assertFalse([r for r in started if r is front], "the accept-only replica runs nothing")

    def test_6_a_work_only_replica_takes_no_upload_and_runs_jobs(self):
        worker = self.start_replica("worker", "--role=work")
        self.replicas.append(worker)
        self.assertIn("runs jobs", "".join(worker.start_lines))
        with self.assertRaises(grpc.RpcError) as refused:
            worker.stub.Submit(harness.submit_messages(pb, FIXTURES, "not-here"))
        self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("only runs jobs", refused.exception.details())
        # With the other workers stopped, the accept-only replica takes the study and the worker runs it.
        front = next(r for r in self.replicas if "accepts uploads\n" in "".join(r.start_lines))
        others = [r for r in self.replicas if r is not worker and r is not front]
        self.scrape(front, waiting=0, running=0)  # the jobs test 5 cancelled have left the queue
        for other in others:
            other.process.send_signal(signal.SIGSTOP)
        try:
            front.stub.Submit(harness.submit_messages(pb, FIXTURES, "for-the-worker"))
            states, _ = harness.watch(pb, front.stub, "for-the-worker", os.path.join(self.temp, "worker"),
                                      timeout=WATCH_S)
        finally:
            for other in others:
                other.process.send_signal(signal.SIGCONT)
        self.assertEqual(states[-1].state, pb.DONE)
        self.assertEqual(self.events("started", "for-the-worker"), [worker])


if __name__ == "__main__":
    unittest.main(verbosity=2)
