"""Compare two commits' ingest figures on PostgreSQL + RabbitMQ, runs alternated A B A B.

    git worktree add /tmp/bench/A <commit A>; git worktree add /tmp/bench/B <commit B>
    .venv/bin/python bench/compare_commits.py --tree A=/tmp/bench/A --tree B=/tmp/bench/B --rounds 2

Each run gets a fresh service: its own database (createdb / dropdb on --admin-url's server), its
own queue and Socket.IO channel on --broker-url, and the commit's own source (the venv's python
with PYTHONPATH=<tree>/src, checked before the first run), started as bench/README.md says
(`python -m app.launcher` with DATABASE_URL, CELERY_BROKER_URL, EYE_QUEUE, EYE_PORT,
EYE_WEB_PROCESSES=2). Once its EYE_API_KEY line is printed the same client (--client, by default
bench/ingest.py next to this script) runs one figure, which ends when every accepted event is
stored; then the service gets SIGINT, its process group is killed if anything is left, and the
database, queue and exchanges are removed. For each run the CPU time per process group (web,
worker, PostgreSQL, RabbitMQ, bench client, the rest of the machine) is read from /proc over the
load window and over the whole run (load + drain). Prints a table per figure, writes JSON.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

HERE = Path(__file__).resolve().parent

FIGURES = {
    "single": (["--mode", "single", "--concurrency", "16", "--duration", "15"], "accepted_per_second"),
    "batch": (["--mode", "batch", "--batch-size", "100", "--concurrency", "8", "--duration", "15"],
              "accepted_per_second"),
    "e2e": (["--mode", "batch", "--batch-size", "100", "--concurrency", "4", "--duration", "{e2e}"],
            "end_to_end_per_second"),
    "p99": (["--mode", "single", "--concurrency", "4", "--rate", "100", "--duration", "30"], "p99"),
    # The sustainable rate (constant-rate steps, bench/README.md): the highest step the commit keeps up with.
    "steps-single": (["--shape", "single", "--step-rates", "{single_rates}", "--step-seconds", "{step_seconds}",
                      "--queue", "{queue}", "--broker-url", "{broker}"], "sustainable_per_second"),
    "steps-mixed": (["--shape", "mixed", "--step-rates", "{mixed_rates}", "--step-seconds", "{step_seconds}",
                     "--queue", "{queue}", "--broker-url", "{broker}"], "sustainable_per_second"),
}


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def check_source(python: str, tree: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    out = subprocess.run([python, "-c", "import app, tasks; print(app.__file__); print(tasks.__file__)"],
                         env=env, cwd=tree, capture_output=True, text=True, check=True).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"{tree}: imports {path}, not the worktree's source")
    return out[0]


# --- CPU accounting ---------------------------------------------------------------------------

def cpu_of(process: psutil.Process) -> float:
    t = process.cpu_times()
    # Children reaped meanwhile (the client's load process, PostgreSQL's short-lived backends).
    return t.user + t.system + t.children_user + t.children_system


def classify(process: psutil.Process, service_pids: set[int], client_pid: int) -> str | None:
    try:
        if process.pid == client_pid:
            return "bench"
        if process.pid in service_pids:
            cmd = " ".join(process.cmdline())
            if "gunicorn" in cmd:
                return "web"
            if "celery" in cmd:
                return "worker"
            return "launcher"
        user = process.username()
        if user == "postgres":
            return "postgresql"
        if user == "rabbitmq":
            return "rabbitmq"
    except (psutil.Error, ProcessLookupError):
        return None
    return None


def service_processes(launcher_pid: int) -> set[int]:
    """The launcher and everything under it. By ancestry, not by process group: the launcher
    starts gunicorn and Celery in process groups of their own (app/launcher.py, start_child)."""
    try:
        launcher = psutil.Process(launcher_pid)
        return {launcher_pid} | {child.pid for child in launcher.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def snapshot(launcher_pid: int, client_pid: int) -> dict:
    service_pids = service_processes(launcher_pid)
    procs = {}
    for process in psutil.process_iter():
        group = classify(process, service_pids, client_pid)
        if group is None:
            continue
        try:
            procs[(process.pid, process.create_time())] = (group, cpu_of(process))
        except psutil.Error:
            pass
    t = psutil.cpu_times()
    busy = sum(t) - t.idle - getattr(t, "iowait", 0)
    return {"at": time.monotonic(), "procs": procs, "busy": busy}


def split(before: dict, after: dict) -> dict:
    """CPU per group between two snapshots, as % of one vCPU."""
    seconds = after["at"] - before["at"]
    groups: dict[str, float] = {}
    for key, (group, cpu) in after["procs"].items():
        groups[group] = groups.get(group, 0.0) + cpu - before["procs"].get(key, (group, 0.0))[1]
    for key, (group, cpu) in before["procs"].items():
        if key not in after["procs"]:  # gone: its parent's children times now hold its whole life
            groups[group] = groups.get(group, 0.0) - cpu
    ours = sum(groups.values())
    groups["rest of machine"] = after["busy"] - before["busy"] - ours
    groups["machine total"] = after["busy"] - before["busy"]
    return {g: round(100 * max(v, 0.0) / seconds, 1) for g, v in groups.items()} | {"seconds": round(seconds, 1)}


# --- one run ----------------------------------------------------------------------------------

def psql(admin_url: str, sql: str) -> None:
    subprocess.run(["psql", admin_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def delete_broker_entities(python: str, broker_url: str, queue: str, exchanges: list[str]) -> None:
    # The ingest queue and the upkeep's queue beside it (<queue>.maintenance, since issue 14).
    subprocess.run([python, str(HERE / "broker_cleanup.py"), broker_url, "--queue", queue,
                    "--queue", f"{queue}.maintenance", *[arg for e in exchanges for arg in ("--exchange", e)]],
                   check=True, timeout=60)


def stop_service(service: subprocess.Popen) -> list[int]:
    """SIGINT to the launcher, then SIGKILL to whatever is left in its process group."""
    pgid = service.pid
    if service.poll() is None:
        service.send_signal(signal.SIGINT)
        try:
            service.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
    left = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid]
        if not left:
            break
        time.sleep(0.2)
    if left:
        os.killpg(pgid, signal.SIGKILL)
    service.wait()
    return left


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def run_once(args, label: str, tree: Path, figure: str, round_no: int) -> dict:
    name = f"eye_cmp_{label.lower()}_{figure}_{round_no}_{uuid.uuid4().hex[:6]}"
    database_url = with_path(args.admin_url, f"/{name}")
    psql(args.admin_url, f'CREATE DATABASE "{name}"')
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), DATABASE_URL=database_url,
               CELERY_BROKER_URL=args.broker_url, EYE_QUEUE=name, EYE_SOCKETIO_CHANNEL=f"{name}-sio",
               EYE_PORT=str(args.port), EYE_WEB_PROCESSES="2", EYE_DATA_DIR=str(Path(args.data_dir) / name))
    env.update(args.tree_env.get(label, {}))  # --env may override any of the above
    service = subprocess.Popen([args.python, "-m", "app.launcher"], cwd=tree, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    result: dict = {"commit": label, "figure": figure, "round": round_no, "database": name}
    try:
        api_key = None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = service.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("EYE_API_KEY="):
                api_key = line.strip().split("=", 1)[1]
                break
        if api_key is None:
            raise RuntimeError(f"{label}: the service printed no EYE_API_KEY:\n{''.join(lines)[-3000:]}")
        threading.Thread(target=lambda: [None for _ in service.stdout], daemon=True).start()  # keep draining
        time.sleep(args.settle)

        bench_args, _ = FIGURES[figure]
        bench_args = [a.format(e2e=args.e2e_duration, queue=name, broker=args.broker_url,
                               single_rates=args.single_rates, mixed_rates=args.mixed_rates,
                               step_seconds=args.step_seconds) for a in bench_args]
        json_path = Path(args.data_dir) / f"{name}.json"
        client = subprocess.Popen(
            [args.python, str(args.client), "--url", f"http://127.0.0.1:{args.port}", "--api-key", api_key,
             "--database-url", database_url, *bench_args, "--json", str(json_path)],
            cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        client_key = (client.pid, psutil.Process(client.pid).create_time())
        start = snapshot(service.pid, client.pid)
        marks: dict = {}

        def watch_stderr():
            seen = b""
            for chunk in iter(lambda: client.stderr.read1(4096), b""):
                seen = (seen + chunk)[-64:]
                if "load_end" not in marks and b"stored" in seen:
                    marks["load_end"] = snapshot(service.pid, client.pid)

        watcher = threading.Thread(target=watch_stderr, daemon=True)
        watcher.start()
        out = client.stdout.read().decode()
        # The client's CPU, its reaped load processes included, from the kernel's account of it.
        _, status, usage = os.wait4(client.pid, 0)
        client.returncode = os.waitstatus_to_exitcode(status)
        end = snapshot(service.pid, client.pid)
        end["procs"][client_key] = ("bench", usage.ru_utime + usage.ru_stime)
        watcher.join(timeout=5)
        report = json.loads(json_path.read_text())
        if "verdict" in report:  # constant-rate steps
            result.update(
                sustainable_per_second=report["verdict"]["sustainable_per_second"] or 0,
                verdict=report["verdict"]["text"], steps=report["steps"], count_check=report["count_check"],
                load_average=os.getloadavg()[0], cpu_run=split(start, end), client_output=out,
            )
            return result
        result.update(
            accepted_per_second=report["accepted_per_second"],
            end_to_end_per_second=report["end_to_end_per_second"],
            p50=report["ack_latency_ms"]["p50"], p95=report["ack_latency_ms"]["p95"],
            p99=report["ack_latency_ms"]["p99"], accepted=report["accepted_events"],
            lag=report["lag_seconds"], statuses=report["statuses"], count_check=report["count_check"],
            cpu_load=split(start, marks["load_end"]) if "load_end" in marks else None,
            cpu_run=split(start, end), load_average=os.getloadavg()[0], client_output=out,
        )
    finally:
        result["leftovers_killed"] = stop_service(service)
        psql(args.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        delete_broker_entities(args.python, args.broker_url, name, [name, f"{name}.maintenance", f"{name}-sio"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, help="LABEL=worktree (twice: A then B)")
    parser.add_argument("--env", action="append", default=[], metavar="LABEL:NAME=VALUE",
                        help="a setting for one tree's service only (e.g. B:EYE_WORKER_GROUP_WAIT_MS=250); "
                             "the same worktree may be given twice under two labels")
    parser.add_argument("--figures", default="single,batch,e2e,p99")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--e2e-duration", type=int, default=60)
    parser.add_argument("--single-rates", default="150,225,300,450,600,750", help="steps-single: events/s")
    parser.add_argument("--mixed-rates", default="1000,2000,3000,4000,5000,6000", help="steps-mixed: events/s")
    parser.add_argument("--step-seconds", default="30")
    parser.add_argument("--python", default=str(HERE.parent / ".venv" / "bin" / "python"))
    parser.add_argument("--client", default=str(HERE / "ingest.py"), help="the same ingest.py for every commit")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between the service's start and the load")
    parser.add_argument("--data-dir", default="/tmp/eye-compare")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
    args.tree_env = {}
    for setting in args.env:
        label, assignment = setting.split(":", 1)
        name, value = assignment.split("=", 1)
        args.tree_env.setdefault(label, {})[name] = value
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    for label, tree in trees:
        print(f"{label}: {tree} imports {check_source(args.python, tree)}", flush=True)

    results = []
    json_path = Path(args.json_path or HERE / "results" / f"compare-{int(time.time())}.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for figure in args.figures.split(","):
        for round_no in range(1, args.rounds + 1):
            for label, tree in trees:
                r = run_once(args, label, tree, figure, round_no)
                results.append(r)
                value = r[FIGURES[figure][1]]
                if "verdict" in r:
                    print(f"{figure} round {round_no} {label}: {r['verdict']} ({r['count_check']}, "
                          f"load avg {r['load_average']:.2f})", flush=True)
                    print(r["client_output"], flush=True)
                else:
                    print(f"{figure:6} round {round_no} {label}: {value:10.1f}  (accepted {r['accepted_per_second']:.0f}/s, "
                          f"e2e {r['end_to_end_per_second']:.0f}/s, p50/p99 {r['p50']:.1f}/{r['p99']:.1f} ms, "
                          f"{r['count_check']}, load avg {r['load_average']:.2f}, cpu {r['cpu_load']})", flush=True)
                json_path.write_text(json.dumps(results, indent=2))

    print(f"\n{'figure':8} " + " ".join(f"{label:>28}" for label, _ in trees) + "   ratio (medians)")
    for figure in args.figures.split(","):
        key = FIGURES[figure][1]
        medians = []
        cells = []
        for label, _ in trees:
            values = [r[key] for r in results if r["figure"] == figure and r["commit"] == label]
            medians.append(statistics.median(values))
            cells.append(", ".join(f"{v:.1f}" for v in values) + f" | {medians[-1]:.1f}")
        ratio = medians[1] / medians[0] if len(medians) == 2 and medians[0] else float("nan")
        print(f"{figure:8} " + " ".join(f"{c:>28}" for c in cells) + f"   {trees[-1][0]}/{trees[0][0]} {ratio:.3f}")
    print(f"json: {json_path}")
    return 0 if all(r["count_check"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
