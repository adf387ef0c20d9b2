"""Tutorial 1 (up-scale with Prometheus), live on this machine, narrated as it happens.

The carts demo app, a real Prometheus with the rules `receiver rules` generates, a real
Alertmanager, the Kubernetes API stand-in, and the receiver. Load is raised; watch the alert
fire, the receiver scale carts-primary from 1 to 2 replicas, latency drop, the SLO pass.

    scripts/demo.sh        (installs what it needs, then runs this)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import processes  # noqa: E402
from tests.e2e import stack  # noqa: E402


def say(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {what}", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="selfheal-demo-") as tmp:
        work = Path(tmp)
        say("starting the carts app, Prometheus, Alertmanager and the Kubernetes stand-in …")
        with stack.running(work, None) as world:
            port = world.receiver_port
            env = world.receiver_env(work / "journal.db", RECEIVER_LOG_LEVEL="warning")
            with processes.receiver(ROOT / "config", port=port, log=work / "receiver.log", **env):
                say(
                    f"receiver listening on http://127.0.0.1:{port} (config/: sockshop/"
                    "production/carts, wait 6 s, evaluation window 3 s)"
                )
                state = world.carts(load=3)
                say(
                    f"load on carts x3: latency {state['latency_ms']:.0f} ms on "
                    f"{world.replicas()} replica — the SLO wants p90 < 600 ms"
                )
                seen: set[str] = set()
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    for alert in world.firing():
                        if f"alert {alert}" not in seen:
                            seen.add(f"alert {alert}")
                            say(f"Prometheus: alert {alert} pending/firing → Alertmanager")
                    for item in world.remediations():
                        key = f"remediation {item['id']} {item['state']} {len(item['steps'])}"
                        if key in seen:
                            continue
                        seen.add(key)
                        for step in item["steps"]:
                            line = (
                                f"  step {step['position'] + 1}: {step['action']} → "
                                f"{step['result']}: {step['detail']}"
                            )
                            if line not in seen:
                                seen.add(line)
                                say(line)
                            evaluation = step.get("evaluation")
                            if evaluation and f"eval {step['position']}" not in seen:
                                seen.add(f"eval {step['position']}")
                                say(
                                    f"  SLO evaluation: {evaluation['result']} "
                                    f"(score {evaluation['score']:.0f})"
                                )
                        say(
                            f"remediation {item['id']} for '{item['title']}': {item['state']}"
                            + (f" — {item['reason']}" if item.get("reason") else "")
                        )
                        if item["state"] not in ("pending", "running"):
                            carts = world.carts_state()
                            say(
                                f"carts now: {world.replicas()} replicas, latency "
                                f"{carts['latency_ms']:.0f} ms"
                            )
                            print()
                            subprocess.run(
                                [
                                    sys.executable,
                                    "-m",
                                    "receiver",
                                    "status",
                                    "--url",
                                    f"http://127.0.0.1:{port}",
                                    str(item["id"]),
                                ],
                                check=False,
                            )
                            return 0 if item["state"] == "healed" else 1
                    time.sleep(0.5)
                say("nothing finished within 2 minutes; see the receiver's log")
                return 1


if __name__ == "__main__":
    sys.exit(main())
