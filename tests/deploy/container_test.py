#!/usr/bin/python3
"""segrel's container image (docker/), built and run with podman:
- the runtime image is built from this machine's Release build (docker/build-image --host-build, on the Debian base
  docker/make-base-image makes from the Debian archive when it is not there yet);
- its metadata agrees with what runs it: non-root user 10001 (deploy/'s runAsUser), exposed ports = the ports its
  flag file opens, a HEALTHCHECK through segrel-client health, the tag and model path deploy/ names, size printed;
- run as Kubernetes runs it (read-only root file system, the spool on a volume) it becomes SERVING (time printed),
  lists the bundled models, passes its own HEALTHCHECK and serves /metrics on the published port;
- with the fixture model repository mounted, segrel-client on the host submits the fixture study: the results equal
  `segrel analyze`'s on the same files;
- SIGTERM (podman stop) while a job of the bundled model runs: the job finishes and reaches its client, the server
  exits 0; SIGTERM during start-up stops it too (tini is PID 1).

Usage (ctest runs it): container_test.py BUILD_DIR SEGREL SEGREL_CLIENT FIXTURE_DIR WORK_DIR. Skips (exit 77) with
the reason when podman is missing or cannot run a container here (no user namespaces, no OCI runtime).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server"))
import segrel_harness as harness  # noqa: E402

BUILD, SEGREL, CLIENT, FIXTURES, WORK = (os.path.abspath(argument) for argument in sys.argv[1:6])
del sys.argv[1:6]
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = "localhost/segrel-debian:12"
IMAGE = "localhost/segrel:cpu"
# Flags that let podman run in sandboxes that may not raise resource limits (such as this project's CI); harmless
# elsewhere.
RUN_FLAGS = ["--ulimit", "nproc=4096:4096", "--ulimit", "nofile=4096:4096"]
if shutil.which("runc"):
    RUN_FLAGS[:0] = ["--runtime", "runc"]
CONTAINERS = []  # names of the containers this test started: removed at the end


def skip(reason):
    print(f"container_test: skipped: {reason}")
    sys.exit(77)


def podman(*arguments, check=True, timeout=600):
    result = subprocess.run(["podman", *arguments], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(arguments)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def flag_file(path):
    """The --name=value lines of a flag file as a dict."""
    with open(path) as f:
        return dict(line.strip()[2:].split("=", 1) for line in f if line.startswith("--") and "=" in line)


if shutil.which("podman") is None:
    skip("podman is not installed (scripts/install-deps installs it with runc)")
if not podman("image", "exists", BASE, check=False).returncode == 0:
    if shutil.which("mmdebstrap") is None:
        skip(f"the base image {BASE} is missing and mmdebstrap, which makes it, is not installed")
    made = subprocess.run([os.path.join(REPOSITORY, "docker", "make-base-image"), BASE], capture_output=True,
                          text=True, timeout=900)
    if made.returncode != 0:
        raise SystemExit(f"container_test: docker/make-base-image failed: {made.stderr[-3000:]}")
trial = podman("run", "--rm", *RUN_FLAGS, BASE, "true", check=False, timeout=120)
if trial.returncode != 0:
    skip(f"podman cannot run a container on this machine: {trial.stderr.strip()[-500:]}")


def start(name, *arguments, command=()):
    """Starts a detached container from IMAGE; returns (name, {container port: host port})."""
    ports = {port: harness.free_port() for port in (50051, 50052, 9464)}
    published = [f"--publish=127.0.0.1:{host}:{port}" for port, host in ports.items()]
    podman("rm", "--force", name, check=False)
    podman("run", "--detach", "--name", name, *RUN_FLAGS, *published, *arguments, IMAGE, *command)
    CONTAINERS.append(name)
    return ports


def wait_until_serving(health_port, timeout=60):
    """Seconds until `segrel-client health` answers SERVING through the published health port."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if subprocess.run([CLIENT, "--server", f"127.0.0.1:{health_port}", "health"],
                          capture_output=True).returncode == 0:
            return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError(f"not SERVING after {timeout} s")


def logs(name):
    result = podman("logs", name, check=False)
    return result.stdout + result.stderr


class ContainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(prefix="container_test.", dir=WORK)
        began = time.monotonic()
        environment = dict(os.environ, CONTAINER_FLAGS=" ".join(RUN_FLAGS))
        built = subprocess.run([os.path.join(REPOSITORY, "docker", "build-image"), "--host-build", BUILD,
                                "--base", BASE, "--tag", IMAGE], capture_output=True, text=True, timeout=1200,
                               env=environment)
        if built.returncode != 0:
            raise RuntimeError(f"docker/build-image failed: {built.stderr[-4000:]}")
        print(f"container_test: runtime image built from the host's build in {time.monotonic() - began:.0f} s")
        cls.image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]

    @classmethod
    def tearDownClass(cls):
        for name in CONTAINERS:
            podman("rm", "--force", "--time", "0", name, check=False)
        shutil.rmtree(cls.temp, ignore_errors=True)

    def spool(self, name):
        """A host folder for a container's spool, writable by the image's user (10001)."""
        folder = os.path.join(self.temp, name)
        os.makedirs(folder)
        os.chown(folder, 10001, 10001)
        return folder

    def test_1_the_image_agrees_with_its_flags_and_with_deploy(self):
        config = self.image["Config"]
        size_mb = self.image["Size"] / 1e6
        print(f"container_test: {IMAGE} is {size_mb:.0f} MB")
        self.assertLessEqual(size_mb, 1500, "the runtime image is at most 1.5 GB")
        self.assertEqual(config["User"], "10001:10001")
        self.assertEqual(config["Entrypoint"], ["/usr/bin/tini", "--", "/opt/segrel/bin/segrel-server"])
        self.assertEqual(config["Cmd"], ["--flagfile=/etc/segrel/segrel-server.flags"])
        flags = flag_file(os.path.join(REPOSITORY, "docker", "segrel-server.flags"))
        opened = {int(flags[name].rsplit(":", 1)[1]) for name in ("address", "health-address", "metrics-address")}
        self.assertEqual({int(port.split("/")[0]) for port in config["ExposedPorts"]}, opened | {11112})
        health = self.image["Healthcheck"]["Test"]
        self.assertEqual(health[:2], ["CMD", "/opt/segrel/bin/segrel-client"])
        self.assertIn(flags["health-address"].rsplit(":", 1)[1], health[3], "the check asks the health port")

        # deploy/ runs this image: the base (the cpu overlay) names its tag, its flag file the image's model path and user.
        with open(os.path.join(REPOSITORY, "deploy", "base", "kustomization.yaml")) as f:
            kustomization = f.read()
        name, tag = IMAGE.rsplit(":", 1)
        self.assertRegex(kustomization, rf"newName: {re.escape(name)}\s+newTag: {tag}\b")
        deploy_flags = flag_file(os.path.join(REPOSITORY, "deploy", "base", "segrel-server.flags"))
        self.assertEqual(deploy_flags["model-repository"], flags["model-repository"])
        with open(os.path.join(REPOSITORY, "deploy", "base", "statefulset.yaml")) as f:
            self.assertIn("runAsUser: 10001", f.read())

    def test_2_run_as_kubernetes_runs_it_it_serves_the_bundled_models(self):
        began = time.monotonic()
        ports = start("segrel-container-test-default", "--read-only", "--tmpfs", "/tmp",
                      "--volume", f"{self.spool('default-spool')}:/var/lib/segrel/spool")
        ready = wait_until_serving(ports[50052])
        print(f"container_test: SERVING {time.monotonic() - began:.2f} s after `podman run` began "
              f"({ready:.2f} s after it returned)")
        listed = subprocess.run([CLIENT, "--server", f"127.0.0.1:{ports[50051]}", "models"], capture_output=True,
                                text=True)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(re.findall(r"(?m)^(\S+)@", listed.stdout), ["brats-2seq", "ms-flair4"])
        self.assertEqual(podman("healthcheck", "run", "segrel-container-test-default", check=False).returncode, 0,
                         "the image's own HEALTHCHECK passes")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{ports[9464]}/metrics", timeout=10).read().decode()
        self.assertRegex(metrics, r"(?m)^segrel_jobs_received_total 0$")
        self.assertEqual(podman("exec", "segrel-container-test-default", "id", "-u").stdout.strip(), "10001")
        stopped = podman("stop", "--time", "70", "segrel-container-test-default")
        self.assertEqual(stopped.returncode, 0)
        state = json.loads(podman("inspect", "segrel-container-test-default").stdout)[0]["State"]
        self.assertEqual(state["ExitCode"], 0, logs("segrel-container-test-default"))
        self.assertIn("segrel-server: stopped", logs("segrel-container-test-default"))

    def test_3_the_fixture_study_through_the_container_equals_segrel_analyze(self):
        name = "segrel-container-test-fixtures"
        ports = start(name, "--volume", f"{FIXTURES}:/opt/segrel/models:ro",
                      "--volume", f"{self.spool('fixture-spool')}:/var/lib/segrel/spool")
        wait_until_serving(ports[50052])
        inputs = [argument for sequence in harness.SEQUENCES
                  for argument in ("--input", f"{sequence}={harness.study_file(FIXTURES, sequence)}")]
        options = ["--seed", "5", "--maps", "--no-pictures"]
        served = os.path.join(self.temp, "served")
        submitted = subprocess.run([CLIENT, "--server", f"127.0.0.1:{ports[50051]}", "submit", "--model",
                                    harness.MODEL, *inputs, *options, "--job-id", "container", "--out", served],
                                   capture_output=True, text=True, timeout=300)
        self.assertEqual(submitted.returncode, 0, submitted.stderr)
        reference = os.path.join(self.temp, "analyze")
        subprocess.run([SEGREL, "analyze", "--model", os.path.join(FIXTURES, "bundle"), *inputs, *options, "--out",
                        reference], check=True, capture_output=True, timeout=300)
        self.assertEqual(harness.same_outputs(served, reference), [])


    def test_4_sigterm_while_a_job_runs_lets_it_finish_then_exits_0(self):
        """The bundled ms-flair4 on one 128-cube window of the bundled study (seconds, not the fixture's
        milliseconds), SIGTERM once it runs: the job finishes, its client gets the results, the server exits 0."""
        import nibabel
        study = os.path.join(self.temp, "window")
        os.makedirs(study)
        inputs = []
        for sequence in ("T1", "T1POST", "T2", "FLAIR"):
            image = nibabel.load(os.path.join(REPOSITORY, "data", "ms-lesjak", "patient19", f"{sequence}.nii.gz"))
            nibabel.save(image.slicer[27:155, 45:173, 27:155], os.path.join(study, f"{sequence}.nii.gz"))
            inputs += ["--input", f"{sequence}={os.path.join(study, sequence + '.nii.gz')}"]
        name = "segrel-container-test-drain"
        ports = start(name, "--volume", f"{self.spool('drain-spool')}:/var/lib/segrel/spool")
        wait_until_serving(ports[50052])
        drained = os.path.join(self.temp, "drained")
        client = subprocess.Popen([CLIENT, "--server", f"127.0.0.1:{ports[50051]}", "submit", "--model", "ms-flair4",
                                   *inputs, "--no-pictures", "--job-id", "drain", "--out", drained],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while "segrel-audit event=started job=drain " not in logs(name):
            self.assertLess(time.monotonic(), deadline, logs(name))
            time.sleep(0.1)
        stopped = podman("stop", "--time", "70", name)
        self.assertEqual(stopped.returncode, 0)
        out, err = client.communicate(timeout=120)
        self.assertEqual(client.returncode, 0, err)
        self.assertIn("job drain: done", err)
        with open(os.path.join(drained, "relevance.json")) as f:
            report = json.load(f)
        self.assertIn("ms-flair4", json.dumps(report.get("model")), "the bundled model made these results")
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        self.assertEqual(state["ExitCode"], 0, logs(name))
        self.assertRegex(logs(name), r"stopping \(running jobs get 1m\)[\s\S]*segrel-audit event=ended job=drain "
                                     r"[\s\S]*segrel-server: stopped", "the job ended after SIGTERM, then the server")

    def test_5_sigterm_during_start_up_is_not_lost(self):
        """The kernel drops a SIGTERM to a PID 1 without a handler; tini (PID 1) forwards it even while
        segrel-server still loads its libraries, so the container stops at once instead of being killed at the end
        of the stop timeout (exit code 137)."""
        name = "segrel-container-test-early-stop"
        start(name)
        began = time.monotonic()
        podman("stop", "--time", "30", name)
        self.assertLess(time.monotonic() - began, 20, "stopped by SIGTERM, not by SIGKILL after 30 s")
        self.assertIn(json.loads(podman("inspect", name).stdout)[0]["State"]["ExitCode"], (0, 143), logs(name))


if __name__ == "__main__":
    unittest.main(verbosity=2)
