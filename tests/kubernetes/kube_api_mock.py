"""A MOCK of the Kubernetes API server, on 127.0.0.1, for the cluster-path tests. It is NOT a cluster.

No API server can run on these machines, so the Kubernetes target's cluster path (server-side apply, reads,
pod logs and events, deletes) is driven against this in-memory stand-in. It speaks the real wire format the
official ``kubernetes`` client uses (paths, ``application/apply-patch+yaml`` with ``fieldManager`` and
``force``, label and field selectors, ``Status`` error bodies) and plays a tiny Deployment controller:
when a Deployment is applied it creates the pods of the new template generation with the statuses a real
kubelet reports for the chosen :attr:`KubeApiMock.behaviour`:

- ``"healthy"``: pods Running, Ready after :attr:`ready_after` seconds; then the rollout completes (the old
  generation's pods go away and the Deployment's status says so);
- ``"image-pull"``: the container waits in ``ImagePullBackOff``;
- ``"init-fails"``: the container terminated with exit code 3 (the scoring server's "init() failed") and
  waits in ``CrashLoopBackOff``; its log holds the traceback;
- ``"unschedulable"``: the pod is Pending with ``PodScheduled=False``/``Unschedulable``
  ("0/3 nodes are available: 3 Insufficient cpu.").

What a real cluster does beyond this (scheduling, image pulls, probes, HPA, field ownership conflicts,
admission) is not modelled; the README says what was and was not tested against a real cluster.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

#: path prefix -> (apiVersion, plural) of the kinds the target writes.
_RESOURCE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/(?P<version>v[0-9a-z]+))/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log))?$"
)
_KINDS = {
    "deployments": "Deployment", "services": "Service", "secrets": "Secret",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler", "poddisruptionbudgets": "PodDisruptionBudget",
    "pods": "Pod", "events": "Event",
}


@dataclass
class Request:
    """One request the mock received (for assertions)."""

    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any


@dataclass
class KubeApiMock:
    """The in-memory API server state and its HTTP server (see the module docstring)."""

    behaviour: str = "healthy"
    ready_after: float = 1.0
    replicas_default: int = 1
    #: Plurals whose applies are refused with 422 (an admission webhook saying no).
    refuse: set[str] = field(default_factory=set)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self, port: int = 0) -> KubeApiMock:
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                body = yaml.safe_load(raw) if raw else None
                query = parse_qs(parsed.query)
                with mock.lock:
                    mock.requests.append(Request(self.command, parsed.path, query, content_type, body))
                    status, answer, kind = mock.route(self.command, parsed.path, query, content_type, body)
                self._send(status, answer, "text/plain" if kind == "log" else "application/json")

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def kubeconfig(self, path: Any, context: str = "mock", namespace: str = "default") -> Any:
        """Write a kubeconfig naming this server as context ``context``; return its path."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "mock", "cluster": {"server": self.url}}],
            "users": [{"name": "mock", "user": {"token": "mock-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "mock", "user": "mock", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # -- the API ---------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], content_type: str,
              body: Any) -> tuple[int, Any, str]:
        if path.rstrip("/") == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-mock", "gitCommit": "mock",
                         "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22",
                         "compiler": "gc", "platform": "linux/amd64"}, "json"
        match = _RESOURCE.match(path)
        if match is None:
            return 404, _status(404, "NotFound", f"the mock does not serve {path}"), "json"
        ns, plural, name, sub = match["ns"], match["plural"], match["name"], match["sub"]
        self._tick(ns)
        if plural == "pods" and sub == "log":
            pod = self.objects.get(("pods", ns, name))
            if pod is None:
                return 404, _status(404, "NotFound", f'pods "{name}" not found'), "json"
            log = pod["_log"]
            tail = query.get("tailLines")
            lines = log.splitlines(keepends=True)
            return 200, "".join(lines[-int(tail[0]):] if tail else lines).encode(), "log"
        if name is None:
            if method != "GET":
                return 405, _status(405, "MethodNotAllowed", "list only"), "json"
            items = [_public(o) for (p, n, _), o in sorted(self.objects.items()) if p == plural and n == ns]
            selector = (query.get("labelSelector") or [""])[0]
            if selector:
                wanted = dict(pair.split("=", 1) for pair in selector.split(","))
                items = [o for o in items if all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
            fields = (query.get("fieldSelector") or [""])[0]
            if fields.startswith("involvedObject.name="):
                target = fields.split("=", 1)[1]
                items = [o for o in items if o.get("involvedObject", {}).get("name") == target]
            return 200, {"kind": f"{_KINDS[plural]}List", "apiVersion": "v1", "items": items}, "json"
        key = (plural, ns, name)
        if method == "GET":
            if key not in self.objects:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found'), "json"
            return 200, _public(self.objects[key]), "json"
        if method == "DELETE":
            if key not in self.objects:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found'), "json"
            obj = self.objects.pop(key)
            if plural == "deployments":
                for pod_key in [k for k, o in self.objects.items() if k[0] == "pods" and k[1] == ns
                                and o["metadata"]["labels"].get("app.kubernetes.io/instance") == name]:
                    self.objects.pop(pod_key)
            return 200, _public(obj), "json"
        if method == "PATCH":
            if content_type != "application/apply-patch+yaml":
                return 415, _status(415, "UnsupportedMediaType", f"the mock only takes server-side apply, not {content_type}"), "json"
            if plural in self.refuse:
                return 422, _status(422, "Invalid", f"admission webhook denied the {_KINDS[plural]}"), "json"
            if not query.get("fieldManager"):
                return 422, _status(422, "Invalid", "fieldManager is required for apply requests"), "json"
            if body.get("kind") != _KINDS[plural] or body.get("metadata", {}).get("name") != name:
                return 400, _status(400, "BadRequest", "the body's kind or name does not match the URL"), "json"
            if body["metadata"].get("namespace", ns) != ns:
                return 400, _status(400, "BadRequest", "the namespace of the provided object does not match"), "json"
            return 200, _public(self._apply(key, body)), "json"
        return 405, _status(405, "MethodNotAllowed", method), "json"

    def _apply(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        plural, ns, name = key
        old = self.objects.get(key)
        obj = json.loads(json.dumps(body))
        meta = obj["metadata"]
        meta["namespace"] = ns
        meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
        generation = old["metadata"].get("generation", 1) if old else 1
        if old is not None and old.get("spec") != obj.get("spec"):
            generation += 1
        meta["generation"] = generation
        meta.setdefault("creationTimestamp", _now())
        obj["status"] = old.get("status", {}) if old else {}
        if plural == "services" and obj["spec"].get("type") == "LoadBalancer":
            # A cloud controller would assign an address; the mock hands out a documentation address.
            obj["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
        self.objects[key] = obj
        if plural == "deployments" and (old is None or old.get("spec") != obj.get("spec")):
            self._roll_out(ns, obj)
        return obj

    def _roll_out(self, ns: str, deployment: dict[str, Any]) -> None:
        """Create the pods of the Deployment's current template (the controller's and kubelet's part)."""
        template = deployment["spec"]["template"]
        generation = template["metadata"]["labels"].get("mldeploy.io/generation")
        replicas = deployment["spec"].get("replicas", self.replicas_default)
        owned = {k: o for k, o in self.objects.items() if k[0] == "pods" and k[1] == ns
                 and o["metadata"]["labels"].get("app.kubernetes.io/instance") == deployment["metadata"]["name"]}
        for key, pod in owned.items():
            # A rollback scales the failed ReplicaSet to 0; Ready pods of another generation serve on.
            if pod["metadata"]["labels"].get("mldeploy.io/generation") != generation and not (
                pod["status"].get("containerStatuses") or [{}]
            )[0].get("ready"):
                self.objects.pop(key)
        if any(o["metadata"]["labels"].get("mldeploy.io/generation") == generation for o in owned.values()):
            return  # that template's ReplicaSet still has its pods (a rollback to it)
        for i in range(replicas):
            name = f"{deployment['metadata']['name']}-g{generation}-{i}"
            pod = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": dict(template["metadata"]["labels"]),
                             "uid": str(uuid.uuid4()), "creationTimestamp": _now()},
                "spec": json.loads(json.dumps(template["spec"])),
                "_behaviour": self.behaviour, "_created": time.monotonic(),
            }
            self.objects[("pods", ns, name)] = pod
            self._set_pod_status(pod)
            self._event(ns, name, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to mock-node")

    def _event(self, ns: str, pod: str, kind: str, reason: str, message: str) -> None:
        name = f"{pod}.{uuid.uuid4().hex[:8]}"
        self.objects[("events", ns, name)] = {
            "apiVersion": "v1", "kind": "Event", "type": kind, "reason": reason, "message": message,
            "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4())},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns}, "lastTimestamp": _now(),
        }

    def _set_pod_status(self, pod: dict[str, Any]) -> None:
        behaviour = pod["_behaviour"]
        image = pod["spec"]["containers"][0]["image"]
        base = {"name": "scoring", "image": image, "restartCount": 0}
        started = _now()
        if behaviour == "image-pull":
            pod["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                             "containerStatuses": [{**base, "ready": False, "state": {"waiting": {
                                 "reason": "ImagePullBackOff",
                                 "message": f'Back-off pulling image "{image}"'}}}]}
            pod["_log"] = ""
        elif behaviour == "init-fails":
            pod["status"] = {"phase": "Running", "startTime": started,
                             "conditions": [{"type": "PodScheduled", "status": "True"}],
                             "containerStatuses": [{**base, "ready": False, "restartCount": 2, "started": False,
                                                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                          "message": "back-off 20s restarting"}},
                                                    "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}
            pod["_log"] = ("Traceback (most recent call last):\n  File \"score.py\", line 5, in init\n"
                           "RuntimeError: cannot load the model: weights are missing\n")
        elif behaviour == "unschedulable":
            pod["status"] = {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
            pod["_log"] = ""
        else:
            ready = time.monotonic() - pod["_created"] >= self.ready_after
            pod["status"] = {"phase": "Running", "startTime": pod["metadata"]["creationTimestamp"],
                             "conditions": [{"type": "PodScheduled", "status": "True"},
                                            {"type": "Ready", "status": "True" if ready else "False"}],
                             "containerStatuses": [{**base, "ready": ready, "started": True,
                                                    "state": {"running": {"startedAt": started}}}]}
            pod["_log"] = "mldeploy.supervisor - starting 1 worker\n" + (
                "Users's init has completed successfully\nListening at http://0.0.0.0:5001\n" if ready else "")

    def _tick(self, ns: str) -> None:
        """Advance the controller: pod readiness, the Deployment's status, old pods of a finished rollout."""
        for key, pod in list(self.objects.items()):
            if key[0] == "pods" and key[1] == ns and pod["_behaviour"] == "healthy":
                self._set_pod_status(pod)
        for key, deployment in list(self.objects.items()):
            if key[0] != "deployments" or key[1] != ns:
                continue
            name = key[2]
            generation = deployment["spec"]["template"]["metadata"]["labels"].get("mldeploy.io/generation")
            pods = [o for k, o in self.objects.items() if k[0] == "pods" and k[1] == ns
                    and o["metadata"]["labels"].get("app.kubernetes.io/instance") == name]
            new = [p for p in pods if p["metadata"]["labels"].get("mldeploy.io/generation") == generation]
            old = [p for p in pods if p not in new]
            new_ready = [p for p in new if p["status"].get("containerStatuses", [{}])[0].get("ready")]
            desired = deployment["spec"].get("replicas", self.replicas_default)
            if len(new_ready) >= desired:
                for pod in old:  # maxUnavailable 0: old pods go only once the new ones are Ready
                    self.objects.pop(("pods", ns, pod["metadata"]["name"]), None)
                old = []
            old_ready = [p for p in old if p["status"].get("containerStatuses", [{}])[0].get("ready")]
            ready = len(new_ready) + len(old_ready)
            deployment["status"] = {
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": len(new) + len(old), "updatedReplicas": len(new),
                "readyReplicas": ready, "availableReplicas": ready,
            }

    def failing(self, behaviour: str) -> None:
        """Make the pods of the next rollouts behave as ``behaviour``."""
        self.behaviour = behaviour

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for r in self.requests if r.method == method and fragment in r.path)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
