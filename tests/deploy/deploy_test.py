#!/usr/bin/python3
"""deploy/'s Kubernetes manifests, offline: every overlay rendered with `kubectl kustomize`, every object validated
against the API schemas with unknown fields as errors (tools/deploy/validate_manifests.mjs, npm's
kubernetes-models), and the invariants a typo would break, each checked against the real thing:
- the flag file starts the real segrel-server (paths pointed at test folders, ports at free ones): every flag is
  one it knows, with a valid value; a job then runs through it over TLS with a token, and /metrics has the series
  the autoscaler's recording rule reads, with the bucket bounds its promtool test uses;
- container ports, probes, Services, the NetworkPolicy and the ServiceMonitor name the ports the flags open;
- every file a flag names is on a mounted volume (the spool on the pod's own volume, not /tmp);
- terminationGracePeriodSeconds covers preStop, the server's --shutdown-grace and a margin;
- the recording rule passes `promtool check rules` and `promtool test rules`, the PrometheusRule holds the same
  groups, the adapter serves the recorded series under the name the HPA asks for;
- the gpu overlay asks for one GPU and runs one CUDA worker and no CPU worker.
Each check is also run on a copy broken on purpose (a port, a flag, a field), which it must reject.

Usage (ctest runs it): deploy_test.py SEGREL_SERVER PROTO_DIR FIXTURE_DIR WORK_DIR. Skips (exit 77) with the reason
when kubectl (kustomize >= 4), node with tools/deploy's packages, promtool or PyYAML is missing.
"""
import copy
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

SERVER, PROTO_DIR, FIXTURES, WORK = sys.argv[1:5]
del sys.argv[1:5]
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPOSITORY, "deploy")
VALIDATOR = os.path.join(REPOSITORY, "tools", "deploy", "validate_manifests.mjs")
OVERLAYS = ["cpu", "gpu", "scaleout"]
FLAGS_FILE = "segrel-server.flags"
# Container port name -> the flag whose address or port it serves.
PORT_FLAGS = {"grpc": "address", "grpc-health": "health-address", "metrics": "metrics-address", "dicom": "dicom-port"}


def skip(reason):
    print(f"deploy_test: skipped: {reason}")
    sys.exit(77)


try:
    import yaml
except ImportError:
    skip("PyYAML is missing (Debian python3-yaml)")
if shutil.which("kubectl") is None:
    skip("kubectl is missing (scripts/install-deps installs Debian's kubernetes-client where the machine has none)")
_kustomize = re.search(r"Kustomize Version: v(\d+)", subprocess.run(["kubectl", "version", "--client"],
                                                                    capture_output=True, text=True).stdout)
if not _kustomize or int(_kustomize.group(1)) < 4:
    skip("kubectl's kustomize is older than v4 (labels, patches); use a current kubectl")
if shutil.which("node") is None or not os.path.isdir(os.path.join(REPOSITORY, "tools", "deploy", "node_modules")):
    skip("node or tools/deploy/node_modules is missing (scripts/install-deps runs npm ci there)")
if shutil.which("promtool") is None:
    skip("promtool is missing (Debian prometheus)")

grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)


def render(overlay):
    run = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, "overlays", overlay)], capture_output=True,
                         text=True, timeout=120)
    if run.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay}: {run.stderr}")
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


def find(objects, kind, name=None):
    """The one object of `kind` named `name` (ConfigMaps: with kustomize's hash suffix)."""
    def named(o):
        actual = o["metadata"]["name"]
        return name is None or actual == name or (kind == "ConfigMap" and re.fullmatch(rf"{name}-[a-z0-9]+", actual))
    found = [o for o in objects if o["kind"] == kind and named(o)]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} objects {kind}/{name or '*'}")
    return found[0]


def flag_lines(objects):
    return find(objects, "ConfigMap", "segrel-server-flags")["data"][FLAGS_FILE].splitlines()


def flags_of(objects):
    """The flag file as {name: value}."""
    flags = {}
    for line in flag_lines(objects):
        if line.strip() and not line.startswith("#"):
            name, _, value = line.strip().lstrip("-").partition("=")
            flags[name] = value
    return flags


def port_of(value):
    return int(value.rsplit(":", 1)[-1])


def server_container(objects):
    return find(objects, "StatefulSet", "segrel")["spec"]["template"]["spec"]["containers"][0]


def broken_copy(objects, change):
    """A copy of OBJECTS with CHANGE(copy) made: the invariants below must reject it."""
    objects = copy.deepcopy(objects)
    change(objects)
    return objects


def set_flag(objects, name, value):
    """Sets --NAME=VALUE in the rendered flag file."""
    data = find(objects, "ConfigMap", "segrel-server-flags")["data"]
    data[FLAGS_FILE] = re.sub(rf"^--{name}=.*$", f"--{name}={value}", data[FLAGS_FILE], flags=re.M)


# ---- The invariants, each returning what is wrong (empty: fine) --------------------------------------------

def port_problems(objects):
    problems = []
    flags = flags_of(objects)
    container = server_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for name, flag in PORT_FLAGS.items():
        if flag not in flags:
            problems.append(f"the flags open no {flag} for container port {name}")
        elif ports.get(name) != port_of(flags[flag]):
            problems.append(f"container port {name} is {ports.get(name)}, --{flag} opens {port_of(flags[flag])}")
    probe_port = port_of(flags["health-address"]) if "health-address" in flags else port_of(flags["address"])
    for probe, service in (("startupProbe", None), ("readinessProbe", None), ("livenessProbe", "liveness")):
        got = container.get(probe, {}).get("grpc", {})
        if got.get("port") != probe_port:
            problems.append(f"{probe} asks gRPC health on port {got.get('port')}, the health service is on "
                            f"{probe_port}")
        if got.get("service") != service:
            problems.append(f"{probe} asks for health service {got.get('service')!r}, not {service!r}")
    for service in (o for o in objects if o["kind"] == "Service" and
                    o["spec"].get("selector", {}).get("app.kubernetes.io/component") == "server"):
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if (isinstance(target, str) and target not in ports) or (isinstance(target, int) and
                                                                     target not in ports.values()):
                problems.append(f"Service {service['metadata']['name']} port {port['name']} targets {target}, "
                                f"which the container does not open")
    for rule in find(objects, "NetworkPolicy", "segrel")["spec"]["ingress"]:
        for port in rule["ports"]:
            if port["port"] not in ports and port["port"] not in ports.values():
                problems.append(f"the NetworkPolicy admits port {port['port']}, which the container does not open")
    service_ports = {p["name"] for p in find(objects, "Service", "segrel")["spec"]["ports"]}
    for endpoint in find(objects, "ServiceMonitor")["spec"]["endpoints"]:
        if endpoint["port"] not in service_ports:
            problems.append(f"the ServiceMonitor scrapes port {endpoint['port']}, which the Service does not name")
    return problems


def mount_problems(objects):
    problems = []
    flags = flags_of(objects)
    container = server_container(objects)
    spec = find(objects, "StatefulSet", "segrel")["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    # A cluster's replicas (--queue) share one spool: a claim every pod mounts, which must be ReadWriteMany.
    shared = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"].get("volumes", [])
              if "persistentVolumeClaim" in v}
    for flag in ("flagfile", "tls-cert", "tls-key", "tls-client-ca", "tokens-file", "dicom-peers", "spool-dir"):
        path = flags.get(flag) if flag != "flagfile" else container["args"][0].split("=", 1)[1]
        if not path:
            continue
        mount = next((m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")), None)
        if mount is None:
            problems.append(f"--{flag}={path} is on no mounted volume")
        elif flag == "spool-dir" and "queue" not in flags and mounts[mount] not in claims:
            problems.append(f"the spool ({path}) is not on the pod's own volume claim")
        elif flag == "spool-dir" and "queue" in flags:
            claim = shared.get(mounts[mount])
            modes = find(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] if claim else []
            if "ReadWriteMany" not in modes:
                problems.append(f"the replicas of a cluster share no spool: {path} is not on a ReadWriteMany claim")
    return problems


def grace_problems(objects):
    flags = flags_of(objects)
    container = server_container(objects)
    pod = find(objects, "StatefulSet", "segrel")["spec"]["template"]["spec"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    grace = re.fullmatch(r"(\d+)(s|m)", flags.get("shutdown-grace", "2m"))
    shutdown = int(grace.group(1)) * (60 if grace.group(2) == "m" else 1)
    needed = sleep + shutdown + 10  # 10 s at least for the last writes and the exit
    period = pod.get("terminationGracePeriodSeconds", 30)
    if period < needed:
        return [f"terminationGracePeriodSeconds {period} < preStop {sleep} s + --shutdown-grace {shutdown} s + 10 s"]
    return []


def monitoring_problems(objects):
    problems = []
    with open(os.path.join(DEPLOY, "monitoring", "recording-rules.yaml")) as f:
        rules = yaml.safe_load(f)
    if find(objects, "PrometheusRule")["spec"]["groups"] != rules["groups"]:
        problems.append("the PrometheusRule's groups differ from deploy/monitoring/recording-rules.yaml")
    record = rules["groups"][0]["rules"][0]["record"]
    adapter = yaml.safe_load(find(objects, "ConfigMap", "segrel-prometheus-adapter-rules")["data"]["config.yaml"])
    served = {r["name"]["as"]: r["seriesQuery"] for r in adapter["rules"]}
    for metric in find(objects, "HorizontalPodAutoscaler")["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        if name not in served:
            problems.append(f"the HPA scales on {name}, which the adapter does not serve")
        elif not served[name].startswith(record + "{"):
            problems.append(f"the adapter serves {name} from {served[name]}, not the recording rule {record}")
    return problems


def scaleout_problems(objects):
    """A cluster's replicas reach the NATS the overlay runs, and NATS keeps its streams on a volume."""
    problems = []
    flags = flags_of(objects)
    match = re.fullmatch(r"nats://([^:/]+):(\d+)", flags.get("queue", ""))
    if not match:
        return [f"--queue={flags.get('queue')} is not nats://SERVICE:PORT"]
    service = next((o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == match.group(1)), None)
    if service is None:
        return [f"--queue names {match.group(1)}, which is no Service here"]
    if int(match.group(2)) not in [p["port"] for p in service["spec"]["ports"]]:
        problems.append(f"--queue asks port {match.group(2)} of Service {match.group(1)}, which does not open it")
    nats = find(objects, "StatefulSet", "segrel-nats")["spec"]
    args = nats["template"]["spec"]["containers"][0]["args"]
    store = next((a.split("=", 1)[1] for a in args if a.startswith("--store_dir=")), None)
    mounts = {m["mountPath"]: m["name"] for m in nats["template"]["spec"]["containers"][0].get("volumeMounts", [])}
    claims = {c["metadata"]["name"] for c in nats.get("volumeClaimTemplates", [])}
    if "--jetstream" not in args or store is None or mounts.get(store) not in claims:
        problems.append("NATS does not keep JetStream on its own volume (--jetstream, --store_dir on a claim)")
    if find(objects, "StatefulSet", "segrel")["spec"].get("volumeClaimTemplates"):
        problems.append("the replicas still have a spool each")
    return problems


def gpu_problems(objects, base_flags):
    problems = []
    limits = server_container(objects)["resources"].get("limits", {})
    if limits.get("nvidia.com/gpu") != 1:
        problems.append(f"the gpu overlay asks for {limits.get('nvidia.com/gpu')} GPUs, not 1")
    flags = flags_of(objects)
    if (flags.get("cuda-workers"), flags.get("workers")) != ("1", "0"):
        problems.append("the gpu overlay does not run one CUDA worker and no CPU worker")
    others = {k: v for k, v in flags.items() if k not in ("cuda-workers", "workers")}
    if others != {k: v for k, v in base_flags.items() if k not in ("cuda-workers", "workers")}:
        problems.append("the gpu overlay's flags differ from the base's beyond the workers")
    return problems


class DeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(dir=WORK)
        cls.rendered = {overlay: render(overlay) for overlay in OVERLAYS}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.temp, ignore_errors=True)

    def validate(self, objects):
        path = os.path.join(self.temp, "objects.json")
        with open(path, "w") as f:
            json.dump(objects, f)
        return subprocess.run(["node", VALIDATOR, path], capture_output=True, text=True, timeout=120)

    def test_every_overlay_renders_and_every_object_validates(self):
        for overlay, objects in self.rendered.items():
            print(f"{overlay}: " + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects))
            run = self.validate(objects)
            self.assertEqual(run.returncode, 0, f"{overlay}:\n{run.stdout}{run.stderr}")
        broken = copy.deepcopy(self.rendered["cpu"])
        container = server_container(broken)
        container["readinesProbe"] = container.pop("readinessProbe")  # misspelt: an unknown field
        container["ports"][0]["containerPort"] = "50051"  # a string: the schema's type
        run = self.validate(broken)
        self.assertEqual(run.returncode, 1)
        self.assertIn("containers[0].readinesProbe: unknown field", run.stdout)
        self.assertIn("containerPort must be integer", run.stdout)

    def test_ports_mounts_grace_and_monitoring_agree_with_the_flags(self):
        for overlay, objects in self.rendered.items():
            for check in (port_problems, mount_problems, grace_problems, monitoring_problems):
                self.assertEqual(check(objects), [], f"{overlay}: {check.__name__}")
        self.assertEqual(gpu_problems(self.rendered["gpu"], flags_of(self.rendered["cpu"])), [])

        def broken(change):
            return broken_copy(self.rendered["cpu"], change)

        self.assertIn("container port metrics is 9464, --metrics-address opens 9465",
                      port_problems(broken(lambda o: set_flag(o, "metrics-address", "0.0.0.0:9465"))))
        self.assertTrue(port_problems(broken(lambda o: server_container(o)["readinessProbe"]["grpc"].update(
            port=50051))))
        self.assertTrue(mount_problems(broken(lambda o: set_flag(o, "spool-dir", "/tmp/segrel"))))
        self.assertTrue(grace_problems(broken(lambda o: set_flag(o, "shutdown-grace", "2m"))))
        self.assertTrue(monitoring_problems(broken(
            lambda o: find(o, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"].update(name="x"))))
        self.assertTrue(gpu_problems(self.rendered["cpu"], flags_of(self.rendered["cpu"])))

    def test_the_scaleout_overlay_joins_its_replicas_to_its_nats(self):
        scaleout = self.rendered["scaleout"]
        self.assertEqual(scaleout_problems(scaleout), [])
        self.assertEqual(flags_of(scaleout), {**flags_of(self.rendered["cpu"]), "queue-capacity": "64",
                                              "queue": "nats://segrel-nats:4222", "queue-ack-wait": "30s",
                                              "queue-max-deliveries": "3"},
                         "the cpu overlay's flags and the cluster's, nothing else")
        # Every flag is one the server knows (the cpu overlay's file is also run by the test below).
        known = set(re.findall(r"^  --([a-z0-9-]+)", subprocess.run([SERVER, "--help"], capture_output=True,
                                                                     text=True).stdout, flags=re.M))
        self.assertLessEqual(set(flags_of(scaleout)), known)

        def broken(change):
            return broken_copy(scaleout, change)

        self.assertIn("--queue asks port 4223 of Service segrel-nats, which does not open it",
                      scaleout_problems(broken(lambda o: set_flag(o, "queue", "nats://segrel-nats:4222".replace(
                          "4222", "4223")))))
        self.assertTrue(scaleout_problems(broken(lambda o: set_flag(o, "queue", "nats://nats:4222"))))
        self.assertTrue(scaleout_problems(broken(lambda o: find(o, "StatefulSet", "segrel-nats")["spec"][
            "template"]["spec"]["containers"][0]["args"].remove("--jetstream"))))
        self.assertIn("the replicas of a cluster share no spool: /var/lib/segrel/spool is not on a ReadWriteMany "
                      "claim", mount_problems(broken(lambda o: find(o, "PersistentVolumeClaim", "segrel-spool")[
                          "spec"].update(accessModes=["ReadWriteOnce"]))))

    def test_promtool_checks_and_tests_the_recording_rule(self):
        monitoring = os.path.join(DEPLOY, "monitoring")
        for arguments in (["check", "rules", "recording-rules.yaml"], ["test", "rules", "recording-rules.test.yaml"]):
            run = subprocess.run(["promtool", *arguments], cwd=monitoring, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def flag_file_for_here(self, objects, pki_dir):
        """The rendered flag file with its paths pointed at this test's folders and its ports at free ones."""
        pki = harness.Pki(pki_dir, "deploy")
        key, cert = pki.issue("segrel", server=True)
        tokens = os.path.join(pki_dir, "tokens")
        with open(tokens, "w") as f:
            f.write("researcher all deploy-test-token-0123456789\n")
        peers = os.path.join(pki_dir, "peers")
        with open(peers, "w") as f:
            f.write(f"PACS 127.0.0.1 {harness.free_port()}\n")
        here = {"model-repository": FIXTURES, "spool-dir": os.path.join(pki_dir, "spool"), "tls-cert": cert,
                "tls-key": key, "tokens-file": tokens, "dicom-peers": peers, "address": "127.0.0.1:0",
                "health-address": f"127.0.0.1:{harness.free_port()}", "metrics-address": "127.0.0.1:0",
                "dicom-port": str(harness.free_port()), "min-free-mb": "0"}
        lines = []
        for line in flag_lines(objects):
            name = line.lstrip("-").partition("=")[0]
            lines.append(f"--{name}={here[name]}" if name in here else line)
        path = os.path.join(pki_dir, FLAGS_FILE)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path, pki.ca, here

    def test_the_flag_file_starts_the_server_and_its_metrics_feed_the_autoscaler(self):
        folder = tempfile.mkdtemp(dir=self.temp)
        path, ca, here = self.flag_file_for_here(self.rendered["cpu"], folder)
        server = harness.ServerProcess(SERVER, FIXTURES, here["spool-dir"], f"--flagfile={path}", defaults=False)
        try:
            self.assertIn("TLS", server.start_lines[-1])
            self.assertIn("tokens for 1 clients", server.start_lines[-1])
            with open(ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            channel = grpc.secure_channel(f"127.0.0.1:{server.port}", credentials)
            stub = pb_grpc.SegrelStub(channel)
            auth = [("authorization", "Bearer deploy-test-token-0123456789")]
            stub.Submit(harness.submit_messages(pb, FIXTURES, "deploy-job"), metadata=auth, timeout=60)
            states = list(stub.Watch(pb.WatchRequest(job_id="deploy-job", skip_results=True), metadata=auth,
                                     timeout=300))
            self.assertEqual(states[-1].status.state, pb.DONE, states[-1].status.message)
            health = grpc.insecure_channel(here["health-address"])
            check = health.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            self.assertEqual(check(b"", timeout=10), b"\x08\x01", "SERVING on the probes' plaintext port")
            with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
                scrape = response.read().decode()
            channel.close()
            health.close()
        finally:
            code, rest = server.stop()
        self.assertEqual(code, 0, rest)
        with open(os.path.join(DEPLOY, "monitoring", "recording-rules.test.yaml")) as f:
            bounds = set(re.findall(r'segrel_queue_time_seconds_bucket\{[^}]*le="([^"]+)"', f.read()))
        scraped = set(re.findall(r'^segrel_queue_time_seconds_bucket\{le="([^"]+)"\}', scrape, flags=re.M))
        self.assertTrue(scraped, "the recording rule's series is in /metrics")
        self.assertLessEqual(bounds, scraped, "the promtool test uses the server's bucket bounds")

        # A flag the server does not know stops it with the flag named.
        with open(path, "a") as f:
            f.write("--shutdown-grace-seconds=60\n")
        run = subprocess.run([SERVER, f"--flagfile={path}"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2)
        self.assertIn("shutdown-grace-seconds", run.stderr)

    def test_a_server_that_cannot_serve_stays_up_unready_with_one_clear_line(self):
        """The faults a restart cannot fix: readiness NOT_SERVING, liveness SERVING, the reason in one line."""
        folder = tempfile.mkdtemp(dir=self.temp)
        path, _, here = self.flag_file_for_here(self.rendered["cpu"], folder)
        empty = os.path.join(folder, "empty-repository")
        broken = os.path.join(folder, "broken-repository", "unet")
        os.makedirs(empty)
        os.makedirs(broken)
        with open(os.path.join(broken, "segrel.json"), "w") as f:
            f.write('{"format": "segrel.bundle/1", "name": "unet", "model": "missing.pt"')
        not_a_folder = os.path.join(folder, "spool-is-a-file")
        open(not_a_folder, "w").close()
        faults = {"missing certificate": ("tls-cert", os.path.join(folder, "absent.pem"), "absent.pem"),
                  "spool unusable": ("spool-dir", not_a_folder, "spool-is-a-file"),
                  "empty model repository": ("model-repository", empty, "no model to serve"),
                  "broken bundle": ("model-repository", os.path.dirname(broken), "no model to serve")}
        # The spool volume mounted read-only, and full (a real file system of each kind: a tmpfs; needs root).
        mounts = []
        if os.geteuid() == 0:
            for kind, options in (("read-only", "ro,size=8m"), ("full", "size=8m")):
                spool = os.path.join(folder, f"{kind}-spool")
                os.makedirs(spool)
                if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", spool]).returncode == 0:
                    mounts.append(spool)
            if len(mounts) == 2:
                with open(os.path.join(mounts[1], "filler"), "wb") as f:
                    try:
                        while True:
                            f.write(bytes(1 << 20))
                    except OSError:
                        pass
                faults["spool read-only"] = ("spool-dir", mounts[0], "cannot be written (Read-only file system)")
                faults["spool full"] = ("spool-dir", mounts[1], "is full (No space left on device)")
        if len(faults) < 6:
            print("deploy_test: the read-only and full spool faults need root and tmpfs mounts: not run")
        self.addCleanup(lambda: [subprocess.run(["umount", spool]) for spool in mounts])
        with open(path) as f:
            flags = f.read()
        for fault, (name, value, reason) in faults.items():
            with self.subTest(fault):
                faulty = os.path.join(folder, f"{name}.flags")
                with open(faulty, "w") as f:
                    f.write(re.sub(rf"^--{name}=.*$", f"--{name}={value}", flags, flags=re.M))
                process = subprocess.Popen([SERVER, f"--flagfile={faulty}"], stderr=subprocess.PIPE, text=True)
                try:
                    lines = []
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and not any("NOT_SERVING" in line for line in lines):
                        line = process.stderr.readline()
                        if not line:
                            break
                        lines.append(line)
                    log = "".join(lines)
                    self.assertIn("NOT_SERVING", log)
                    self.assertEqual(len([line for line in lines if "error:" in line]), 1, log)
                    self.assertIn(reason, log)
                    channel = grpc.insecure_channel(here["health-address"])
                    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                                response_deserializer=lambda b: b)
                    self.assertEqual(check(b"", timeout=10), b"\x08\x02", "overall NOT_SERVING: readiness fails")
                    self.assertEqual(check(b"\x0a\x08liveness", timeout=10), b"\x08\x01", "liveness SERVING")
                    channel.close()
                    self.assertIsNone(process.poll(), "the process stays up")
                finally:
                    process.terminate()
                    process.communicate(timeout=60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
