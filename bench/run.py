"""The benchmark: `python -m bench.run` (or `make bench`). Never part of `make test`.

1. Data: bench.data loads BENCH_PIECES pieces (default 1,000,000) into the bench database
   (BENCH_DATABASE_URL, else the embedded server's `pieces_bench`), once.
2. Load: the service under gunicorn with its production configuration (gunicorn.conf.py,
   WEB_CONCURRENCY workers), driven by wrk with bench/lua/bench.lua, one scenario at a time:
   a warm-up, then BENCH_DURATION seconds at BENCH_CONNECTIONS connections.
3. Floors, in the same run: every read scenario's exact SQL straight from pgbench at the same
   concurrency (the database floor), and the same gunicorn serving bench/floor_app.py's fixed
   body of the scenario's mean response size (the HTTP floor). For sync, the same DAO SQL
   replayed from one connection (rows/s). And the bare reference (bench/reference_app.py:
   the same reads with none of the service's features) under the same gunicorn, right after
   the service, for the plain read scenarios (REFERENCE_SCENARIOS): "vs reference".
4. Reads under write load (`list_under_sync`), against the same service: list_project_100's
   load alone, then again while one client (one wrk connection, sync_insert's Lua mode)
   syncs 1000-piece batches, started before the reads' warm-up and stopped after their
   measured run; list p50/p99/req/s both ways, and the writer's batches/s and pieces/s.
5. Report: a table on stdout, bench/results/results.json, and the generated section of
   BENCHMARKS.md (between its bench:results markers; the rest of the file is kept).

Environment (all optional):
  BENCH_PIECES=1000000     data set size (bench.data; 10,000,000 works)
  BENCH_DATABASE_URL       bench database (e.g. postgresql://postgres@127.0.0.1:5432/pieces_bench)
  BENCH_QUICK=1            short runs: 5 s per scenario, 1 s warm-up (harness check)
  BENCH_DURATION=15        seconds per measured run
  BENCH_WARMUP=3           seconds of warm-up before each service scenario
  BENCH_CONNECTIONS=16     wrk connections and pgbench clients
  BENCH_THREADS=2          wrk and pgbench threads
  WEB_CONCURRENCY          gunicorn workers (the service's default: max(2, CPUs))
  BENCH_SCENARIOS=a,b      only these scenarios (names as in the table)
  BENCH_NO_REPORT=1        do not rewrite BENCHMARKS.md
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import psutil

from bench import data, export, feed, workload
from pieces_service.config import url_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "lua" / "bench.lua"
REPORT = ROOT / "BENCHMARKS.md"
BEGIN_MARK = "<!-- bench:results:begin -->"
END_MARK = "<!-- bench:results:end -->"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


QUICK = os.environ.get("BENCH_QUICK", "").strip() not in ("", "0")
DURATION = _env_int("BENCH_DURATION", 5 if QUICK else 15)
WARMUP = _env_int("BENCH_WARMUP", 1 if QUICK else 3)
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 16)
THREADS = _env_int("BENCH_THREADS", 2)
WORKERS = _env_int("WEB_CONCURRENCY", max(2, os.cpu_count() or 1))
ONLY = {s.strip() for s in os.environ.get("BENCH_SCENARIOS", "").split(",") if s.strip()}


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- tools and processes

def require_tools() -> tuple[str, str]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench: wrk is not installed. On Debian/Ubuntu: "
                         "sudo apt-get update && sudo apt-get install -y wrk")
    pgbench = find_pgbench()
    if pgbench is None:
        raise SystemExit("bench: pgbench not found (apt-get install -y postgresql-client)")
    return wrk, pgbench


def find_pgbench() -> str | None:
    """pgbench on PATH, else the one the embedded server ships."""
    found = shutil.which("pgbench")
    if found is None:
        from pgserver._commands import POSTGRES_BIN_PATH

        candidate = POSTGRES_BIN_PATH / "pgbench"
        found = str(candidate) if candidate.exists() else None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RssSampler:
    """Samples the RSS of a gunicorn master's workers every 0.25 s while running."""

    def __init__(self, master_pid: int):
        self._master = psutil.Process(master_pid)
        self._stop = threading.Event()
        self.peak = 0
        self.pids: set[int] = set()
        self.last: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[int, int]:
        sizes = {}
        for child in self._master.children():
            try:
                sizes[child.pid] = child.memory_info().rss
            except psutil.Error:
                pass
        return sizes

    def _run(self):
        while not self._stop.wait(0.25):
            sizes = self._sample()
            if sizes:
                self.peak = max(self.peak, max(sizes.values()))
                self.pids.update(sizes)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.last = self._sample()
        self.pids.update(self.last)

    def restarts(self, workers: int) -> int:
        """Workers started during the run (gunicorn's max_requests recycling)."""
        return max(0, len(self.pids) - workers)


@contextmanager
def gunicorn(app_uri: str, env: dict, name: str, workers: int = WORKERS):
    """gunicorn -c gunicorn.conf.py <app_uri> on 127.0.0.1:<free port>; always stopped."""
    port = free_port()
    metrics_dir = tempfile.mkdtemp(prefix="pieces-bench-metrics-")
    full_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": str(workers),
                "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    logfile = open(RESULTS / f"gunicorn-{name}.log", "w")
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py",
               app_uri]
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=logfile,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        probe = "/?bytes=2" if app_uri == "bench.floor_app:app" else "/livez"
        while True:
            if process.poll() is not None:
                raise SystemExit(f"bench: gunicorn ({name}) exited; see "
                                 f"{RESULTS / f'gunicorn-{name}.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: gunicorn ({name}) did not answer in 30 s")
                time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        logfile.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


# ---------------------------------------------------------------- drivers

def wrk_args(scenario: workload.Scenario, connections: int) -> list[str]:
    if scenario.kind == "get":
        return ["get", str(scenario.targets_file)]
    if scenario.kind == "sync":
        return ["sync", str(scenario.pool_file), uuid.uuid4().hex[:8], str(workload.SYNC_ITEMS)]
    slots = math.ceil(connections / THREADS)  # one fixed batch per connection: no self-locking
    return ["resend", str(scenario.pool_file), str(slots), str(workload.SYNC_ITEMS)]


def _wrk_command(wrk: str, port: int, script_args: list[str], seconds: int,
                 connections: int) -> list[str]:
    return [wrk, f"-t{min(THREADS, connections)}", f"-c{connections}", f"-d{seconds}s",
            "--timeout", "30s", "--latency", "-s", str(LUA), f"http://127.0.0.1:{port}",
            "--", *script_args]


def run_wrk(wrk: str, port: int, script_args: list[str], seconds: int,
            connections: int = CONNECTIONS) -> dict:
    command = _wrk_command(wrk, port, script_args, seconds, connections)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    return _wrk_figures(result.returncode, result.stdout, result.stderr)


@contextmanager
def wrk_alongside(wrk: str, port: int, script_args: list[str], connections: int = 1):
    """wrk in the background for as long as the with block runs: started on entry, stopped
    with SIGINT on exit (wrk then reports as at the end of its -d, over the time it ran).
    Yields a dict that holds run_wrk's figures once the block has exited."""
    command = _wrk_command(wrk, port, script_args, 3600, connections)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    figures: dict = {}
    try:
        yield figures
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    figures.update(_wrk_figures(process.returncode, stdout, stderr))


def _wrk_figures(returncode: int, stdout: str, stderr: str) -> dict:
    """bench.lua's BENCH_JSON line, with the rates derived from it."""
    match = re.search(r"^BENCH_JSON (.*)$", stdout, re.MULTILINE)
    if returncode != 0 or not match:
        raise SystemExit(f"bench: wrk failed ({returncode}):\n{stdout}\n{stderr}")
    figures = json.loads(match.group(1))
    seconds_run = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / seconds_run
    figures["mean_bytes"] = figures["bytes"] / max(1, figures["requests"])
    figures["errors"] = sum(figures[k] for k in figures if k.startswith("errors_"))
    figures["inserted_per_s"] = figures["inserted"] / seconds_run
    return figures


def run_pgbench(pgbench: str, url: str, directory: Path, seconds: int,
                clients: int = CONNECTIONS) -> dict:
    """The scripts in `directory` (picked at random per transaction) at `clients` clients."""
    scripts = sorted(directory.glob("*.sql"))
    logs = Path(tempfile.mkdtemp(prefix="pieces-bench-pgbench-"))
    try:
        command = [pgbench, "-n", "-M", "simple", f"-c{clients}",
                   f"-j{min(THREADS, clients)}", f"-T{seconds}", "-l",
                   f"--log-prefix={logs / 'tx'}"]
        for script in scripts:
            command += ["-f", f"{script}@1"]
        command.append(url)
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        if result.returncode != 0:
            raise SystemExit(f"bench: pgbench failed:\n{result.stdout}\n{result.stderr}")
        tps = float(re.search(r"tps = ([\d.]+) \(without initial", result.stdout).group(1))
        latencies = []
        for path in logs.glob("tx*"):
            for line in path.read_text().splitlines():
                fields = line.split()
                latencies.append(int(fields[2]))
        latencies.sort()
        failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
        return {"rps": tps, "p50_us": _percentile(latencies, 50),
                "p99_us": _percentile(latencies, 99),
                "failed": int(failed.group(1)) if failed else 0}
    finally:
        shutil.rmtree(logs, ignore_errors=True)


def _percentile(values: list[int], pct: float) -> int:
    if not values:
        return 0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def sync_db_floor(url, pool_file: Path, seconds: int) -> dict:
    """The sync endpoint's SQL (lock_parents + upsert_pieces_by_natural_key, in the service's
    transaction setup) replayed from one connection with new 1000-piece batches: DB rows/s
    per worker."""
    from pieces_service import db as service_db
    from pieces_service.catalogue import PIECE
    from pieces_service.dao import sync as sync_dao

    config = workload.service_config(url)
    engine = service_db.build_engine(config)
    setup = service_db.transaction_setup(config, readonly=False)
    pool = [line.split() for line in pool_file.read_text().splitlines()][:200]
    blank = {a.name: None for a in PIECE.attributes}
    inserted = batches = 0
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            while time.monotonic() - started < seconds:
                tenant, project, component, assembly, _ = pool[batches % len(pool)]
                tenant_id = uuid.UUID(tenant)
                items = [{**blank, "guid": None, "company_guid": tenant_id,
                          "project_guid": uuid.UUID(project),
                          "component_guid": uuid.UUID(component),
                          "assembly_guid": uuid.UUID(assembly),
                          "piece_id": f"S-floor-{batches}-{k:05d}", "barcode": f"BC{k:010d}",
                          "outer_length": 300 + k, "inner_length": 204 + k, "angle_left": 45,
                          "angle_right": 90, "bar_length": 6500, "profile_code": "P1101",
                          "profile_name": "Frame 70", "profile_color": "WHITE",
                          "trolley": "T01", "cell": "02", "trolley_cell": "T01-02",
                          "material_type": "PVC", "is_active": True, "deleted_at": None}
                         for k in range(workload.SYNC_ITEMS)]
                conn.exec_driver_sql(setup, {"tenant": tenant})
                first = items[0]
                sync_dao.lock_parents(conn, tenant=tenant_id, guids={
                    "project": [first["project_guid"]], "component": [first["component_guid"]],
                    "assembly": [first["assembly_guid"]]})
                added = len(sync_dao.upsert(conn, level=PIECE, tenant=tenant_id, items=items,
                                            by_guid=False)[0])
                conn.exec_driver_sql("COMMIT")
                inserted += added
                batches += 1
    finally:
        engine.dispose()
    elapsed = time.monotonic() - started
    return {"rps": batches / elapsed, "inserted_per_s": inserted / elapsed}


# ---------------------------------------------------------------- the run

def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def measure_service(wrk: str, process, port: int, s: workload.Scenario,
                    connections: int = CONNECTIONS, workers: int = WORKERS,
                    label: str = "service    ") -> dict:
    """Warm up, then one measured wrk run against the service, sampling worker RSS."""
    run_wrk(wrk, port, wrk_args(s, connections), WARMUP if s.kind == "get" else max(WARMUP, 2),
            connections)
    with RssSampler(process.pid) as rss:
        figures = run_wrk(wrk, port, wrk_args(s, connections), DURATION, connections)
    figures["rss_peak_mb"] = rss.peak / 2**20
    figures["rss_after_mb"] = max(rss.last.values(), default=0) / 2**20
    figures["worker_restarts"] = rss.restarts(workers)
    log(f"  {label} {figures['rps']:8.1f} req/s  p50 {figures['p50_us'] / 1000:7.1f} ms"
        f"  p99 {figures['p99_us'] / 1000:7.1f} ms  errors {figures['errors']}"
        + (f"  inserted {figures['inserted_per_s']:,.0f}/s, updated {figures['updated']:,}"
           if s.kind != "get" else "")
        + f"  worker RSS peak {figures['rss_peak_mb']:.0f} MB"
        + f"  worker restarts {figures['worker_restarts']}")
    return figures


def measure_http_floor(wrk: str, port: int, s: workload.Scenario, service: dict,
                       floor_dir: Path) -> dict:
    """The floor app under the same gunicorn: the scenario's mean body size (reads), or the
    same uploaded batches read and discarded (sync)."""
    if s.kind == "get":
        token = s.targets_file.read_text().split("\n", 1)[0].split()[1]
        targets = floor_dir / f"{s.name}.targets"
        targets.write_text(f"/?bytes={round(service['mean_bytes'])} {token}\n")
        figures = run_wrk(wrk, port, ["get", str(targets)], DURATION)
    else:
        figures = run_wrk(wrk, port, wrk_args(s, CONNECTIONS), DURATION)
    log(f"  HTTP floor  {figures['rps']:8.1f} req/s  p50 {figures['p50_us'] / 1000:7.1f} ms"
        f"  p99 {figures['p99_us'] / 1000:7.1f} ms")
    return figures


def measure_list_under_sync(wrk: str, process, port: int, reads: workload.Scenario,
                            writer: workload.Scenario) -> dict:
    """Reads under write load: the `reads` scenario alone (measure_service: warm-up, then
    DURATION s at CONNECTIONS connections), then the same again while one wrk connection runs
    the `writer` sync scenario, started before the reads' warm-up and stopped right after
    their measured run. The writer's rates cover its whole run (warm-up and measured window:
    the read load runs throughout)."""
    alone = measure_service(wrk, process, port, reads, label="alone      ")
    with wrk_alongside(wrk, port, wrk_args(writer, 1), connections=1) as sync:
        loaded = measure_service(wrk, process, port, reads, label="with writer")
    log(f"  writer      {sync['rps']:8.2f} batches/s  {sync['inserted_per_s']:,.0f} pieces/s"
        f"  p50 {sync['p50_us'] / 1000:7.1f} ms  p99 {sync['p99_us'] / 1000:7.1f} ms"
        f"  errors {sync['errors']}  over {sync['duration_us'] / 1e6:.1f} s")
    return {"alone": alone, "with_sync": loaded, "sync": sync}


# The reads the bare reference app serves (bench/reference_app.py): plain 200 pages and
# details, no revalidation, no count, no feed.
REFERENCE_SCENARIOS = ("list_project_100", "list_project_1000", "list_assembly", "detail",
                       "big_page1", "deep_offset", "deep_cursor")


def measure_reference(wrk: str, port: int, s: workload.Scenario) -> dict:
    """The bare reference app under the same gunicorn, with the scenario's own targets."""
    run_wrk(wrk, port, wrk_args(s, CONNECTIONS), WARMUP)
    figures = run_wrk(wrk, port, wrk_args(s, CONNECTIONS), DURATION)
    log(f"  reference   {figures['rps']:8.1f} req/s  p50 {figures['p50_us'] / 1000:7.1f} ms"
        f"  p99 {figures['p99_us'] / 1000:7.1f} ms  errors {figures['errors']}")
    return figures


def measure_db_floor(pgbench: str, url, libpq: str, s: workload.Scenario) -> dict | None:
    """pgbench with the scenario's exact SQL at CONNECTIONS and at WORKERS clients (reads);
    the sync SQL from one connection (sync)."""
    if s.kind == "get":
        figures = run_pgbench(pgbench, libpq, s.pgbench_dir, DURATION)
        # A sync worker holds one connection: the service never has more than
        # WEB_CONCURRENCY statements in flight, so this is its reachable ceiling.
        figures["at_workers"] = run_pgbench(pgbench, libpq, s.pgbench_dir, DURATION, WORKERS)
        log(f"  DB floor    {figures['rps']:8.1f} tx/s   p50 {figures['p50_us'] / 1000:7.1f} ms"
            f"  p99 {figures['p99_us'] / 1000:7.1f} ms;  at {WORKERS} clients "
            f"{figures['at_workers']['rps']:.1f} tx/s")
        return figures
    if s.kind == "sync":
        figures = sync_db_floor(url, s.pool_file, DURATION)
        log(f"  DB floor    {figures['inserted_per_s']:,.0f} rows/s from one connection")
        return figures
    return None


def main() -> None:
    wrk, pgbench = require_tools()
    RESULTS.mkdir(parents=True, exist_ok=True)
    pieces = data.requested_pieces([])
    url, _server = data.bench_url()  # the embedded server runs while the handle lives
    libpq = data.libpq_url(url)
    log(f"bench: database {url.render_as_string(hide_password=True)}; {pieces:,} pieces; "
        f"{WORKERS} workers; {CONNECTIONS} connections; {DURATION} s per run"
        + (" (BENCH_QUICK)" if QUICK else ""))
    load = data.load(url, pieces, echo=log)
    with _admin(url) as cur:
        cur.execute(workload.sync_cleanup_sql())  # leftovers of an interrupted run
        cur.execute("SELECT version()")
        server_version = cur.fetchone()[0].split(" on ")[0]
    log("bench: drawing targets …")
    built = {s.name: s for s in workload.build(url, RESULTS / "targets")}
    # list_under_sync reuses list_project_100 and sync_insert, whether or not they run alone.
    scenarios = [s for s in built.values() if not ONLY or s.name in ONLY]
    env = {"DATABASE_URL": url_text(url), "PIECES_JWT_SECRET": workload.JWT_SECRET}
    results: dict[str, dict] = {s.name: {"title": s.title, "note": s.note, "kind": s.kind}
                                for s in scenarios}
    floor_dir = RESULTS / "targets" / "floor"
    floor_dir.mkdir(exist_ok=True)
    try:
        # Both servers stay up; each scenario runs service, HTTP floor and database floor back
        # to back, so that a ratio compares runs minutes apart at most, not a whole run apart.
        with gunicorn("wsgi:app", env, "service") as (service_process, service_port), \
                gunicorn("bench.floor_app:app", env, "floor") as (_, floor_port), \
                gunicorn("bench.reference_app:app", env, "reference") as (_, reference_port):
            for s in scenarios:
                log(f"bench: {s.name} — {s.title}")
                results[s.name]["service"] = measure_service(wrk, service_process,
                                                             service_port, s)
                if s.name in REFERENCE_SCENARIOS:
                    results[s.name]["reference"] = measure_reference(wrk, reference_port, s)
                results[s.name]["http_floor"] = measure_http_floor(
                    wrk, floor_port, s, results[s.name]["service"], floor_dir)
                floor = measure_db_floor(pgbench, url, libpq, s)
                if floor is not None:
                    results[s.name]["db_floor"] = floor
            if not ONLY or "changes_page_through" in ONLY:
                log("bench: changes_page_through — one client pages through a tenant's feed")
                results["changes_page_through"] = {
                    "title": "Change feed: page through a tenant's changes", "note": "",
                    "kind": "feed", **feed.measure(url, service_port, log)}
            if not ONLY or "list_under_sync" in ONLY:
                reads, writer = built["list_project_100"], built["sync_insert"]
                # From the data set as described: without the rows earlier sync scenarios
                # added (hundreds of thousands, not yet all-visible), "alone" would not be
                # list_project_100's load.
                with _admin(url) as cur:
                    cur.execute(workload.sync_cleanup_sql())
                    cur.execute("VACUUM ANALYZE pieces")
                log(f"bench: list_under_sync — {reads.name} alone, then with one client "
                    f"syncing {workload.SYNC_ITEMS}-piece batches")
                results["list_under_sync"] = {
                    "title": f"{reads.title}, under write load", "kind": "mixed",
                    "note": f"{reads.name} at {CONNECTIONS} connections; the writer: "
                            f"{writer.name} from one connection",
                    **measure_list_under_sync(wrk, service_process, service_port, reads,
                                              writer)}
        # The sync target is per worker: the same batches against a single-worker gunicorn,
        # from 2 connections (one request in hand, the next queued, as a busy worker has).
        if "sync_insert" in results:
            s = next(s for s in scenarios if s.name == "sync_insert")
            log(f"bench: {s.name} on one worker")
            with gunicorn("wsgi:app", env, "service-1", workers=1) as (process, port):
                results[s.name]["one_worker"] = measure_service(
                    wrk, process, port, s, connections=2, workers=1, label="one worker ")
        if not ONLY or "export" in ONLY:
            results["export"] = export.run(url, env, gunicorn, log)
    finally:
        log("bench: removing the rows the sync scenarios inserted …")
        with _admin(url) as cur:
            cur.execute(workload.sync_cleanup_sql())
            cur.execute("VACUUM ANALYZE pieces")
    run = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": _command(),
        "machine": {**machine(), "postgres": server_version},
        "settings": {"pieces": pieces, "workers": WORKERS, "connections": CONNECTIONS,
                     "threads": THREADS, "duration_s": DURATION, "warmup_s": WARMUP,
                     "quick": QUICK,
                     "database": "BENCH_DATABASE_URL" if os.environ.get("BENCH_DATABASE_URL")
                     else "embedded"},
        "load": load,
        "scenarios": results,
    }
    run["targets"] = evaluate(run)
    (RESULTS / "results.json").write_text(json.dumps(run, indent=2))
    table = render(run)
    print("\n" + table)
    if os.environ.get("BENCH_NO_REPORT", "").strip() in ("", "0"):
        write_report(table)
        log(f"bench: figures written to {REPORT.name} and {RESULTS / 'results.json'}")


@contextmanager
def _admin(url):
    from pieces_service.migrate import connect

    conn = connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _command() -> str:
    keys = ("BENCH_PIECES", "BENCH_DATABASE_URL", "BENCH_QUICK", "BENCH_DURATION",
            "BENCH_WARMUP", "BENCH_CONNECTIONS", "BENCH_THREADS", "WEB_CONCURRENCY",
            "BENCH_SCENARIOS")
    prefix = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in keys if os.environ.get(k))
    return (prefix + " " if prefix else "") + "make bench"


# ---------------------------------------------------------------- evaluation and report

def _ratio(results, name, floor) -> float | None:
    entry = results.get(name, {})
    if "service" not in entry or floor not in entry:
        return None
    return entry["service"]["rps"] / entry[floor]["rps"]


def evaluate(run: dict) -> list[dict]:
    r = run["scenarios"]
    checks = []
    goal_text = {
        "list limit=100 >= 60 % of DB floor": ">= 60 %",
        "list limit=1000 >= 75 % of DB floor": ">= 75 %",
        "detail >= 50 % of the lower floor": ">= 50 %",
        "cursor page ~500 p99 <= 1.5x page 1 p99": "<= 1.50x",
        "(same, at the DB floor)": "<= 1.50x",
        "sync >= 20,000 pieces/s on one worker": ">= 20,000 /s",
        "worker RSS < 100 MB (peak over all scenarios)": "< 100 MB",
        "detail >= 85 % of the reference (issue 14)": ">= 85 %",
        "list limit=100 >= 95 % of the reference (issue 14)": ">= 95 %",
        "list limit=1000 >= 95 % of the reference (issue 14)": ">= 95 %",
    }

    def check(target, value, goal, met_if):
        checks.append({"target": target, "value": value, "goal": goal_text[target],
                       "met": None if value is None else met_if(value)})

    check("list limit=100 >= 60 % of DB floor", _ratio(r, "list_project_100", "db_floor"),
          0.60, lambda v: v >= 0.60)
    check("list limit=1000 >= 75 % of DB floor", _ratio(r, "list_project_1000", "db_floor"),
          0.75, lambda v: v >= 0.75)
    lower = None
    if "detail" in r and "db_floor" in r["detail"] and "http_floor" in r["detail"]:
        floor = min(r["detail"]["db_floor"]["rps"], r["detail"]["http_floor"]["rps"])
        lower = r["detail"]["service"]["rps"] / floor
    check("detail >= 50 % of the lower floor", lower, 0.50, lambda v: v >= 0.50)
    cursor = None
    if "deep_cursor" in r and "big_page1" in r:
        cursor = r["deep_cursor"]["service"]["p99_us"] / max(1, r["big_page1"]["service"]["p99_us"])
    check("cursor page ~500 p99 <= 1.5x page 1 p99", cursor, 1.5, lambda v: v <= 1.5)
    db_cursor = None
    if "db_floor" in r.get("deep_cursor", {}) and "db_floor" in r.get("big_page1", {}):
        db_cursor = (r["deep_cursor"]["db_floor"]["p99_us"]
                     / max(1, r["big_page1"]["db_floor"]["p99_us"]))
    check("(same, at the DB floor)", db_cursor, 1.5, lambda v: v <= 1.5)
    sync = None
    if "one_worker" in r.get("sync_insert", {}):
        sync = r["sync_insert"]["one_worker"]["inserted_per_s"]
    check("sync >= 20,000 pieces/s on one worker", sync, 20000, lambda v: v >= 20000)
    rss = max((e["service"]["rss_peak_mb"] for e in r.values() if "service" in e), default=None)
    check("worker RSS < 100 MB (peak over all scenarios)", rss, 100, lambda v: v < 100)
    for name, target, goal in (
            ("detail", "detail >= 85 % of the reference (issue 14)", 0.85),
            ("list_project_100", "list limit=100 >= 95 % of the reference (issue 14)", 0.95),
            ("list_project_1000", "list limit=1000 >= 95 % of the reference (issue 14)", 0.95)):
        check(target, _ratio(r, name, "reference"), goal, lambda v, goal=goal: v >= goal)
    return checks


def _fmt_ratio(value):
    return "–" if value is None else f"{value * 100:.0f} %"


def _revalidation_lines(r: dict) -> list[str]:
    """A 304 next to the 200 of the same list pages."""
    lines = []
    for limit in (100, 1000):
        full, cheap = r.get(f"list_project_{limit}", {}), r.get(f"list_project_{limit}_304", {})
        if "service" in full and "service" in cheap:
            f, c = full["service"], cheap["service"]
            lines.append(f"| list limit={limit} | {f['rps']:.1f} | {c['rps']:.1f} | "
                         f"{c['rps'] / f['rps']:.2f}x | {f['p50_us'] / 1000:.1f} | "
                         f"{c['p50_us'] / 1000:.1f} |")
    if not lines:
        return []
    return ["", "Revalidation: the same pages, as a 200 and as a 304 to `If-None-Match`:", "",
            "| pages | 200 req/s | 304 req/s | 304 / 200 | 200 p50 ms | 304 p50 ms |",
            "|---|---:|---:|---:|---:|---:|", *lines]


def _under_sync_lines(entry: dict | None) -> list[str]:
    """list_under_sync: the same list load alone and with one client syncing."""
    if not entry:
        return []
    alone, loaded, sync = entry["alone"], entry["with_sync"], entry["sync"]

    def row(label, f, batches="–", pieces="–"):
        return (f"| {label} | {f['rps']:.1f} | {f['p50_us'] / 1000:.1f} | "
                f"{f['p99_us'] / 1000:.1f} | {batches} | {pieces} |")

    lines = ["", f"Reads under write load (`list_under_sync`): the list limit=100 load, alone "
                 f"and then while one client (one connection) syncs {workload.SYNC_ITEMS}"
                 "-piece batches, back to back against the same service:", "",
             "| list limit=100 | req/s | p50 ms | p99 ms | sync batches/s | sync pieces/s |",
             "|---|---:|---:|---:|---:|---:|",
             row("alone", alone),
             row(f"with one client syncing {workload.SYNC_ITEMS}-piece batches", loaded,
                 f"{sync['rps']:.2f}", f"{sync['inserted_per_s']:,.0f}")]
    errors = {k: f["errors"] for k, f in (("alone", alone), ("with writer", loaded),
                                          ("writer", sync)) if f["errors"]}
    if errors:
        lines += ["", f"Errors (non-2xx, timeouts, socket): {errors}"]
    return lines


def render(run: dict) -> str:
    r = run["scenarios"]
    s = run["settings"]
    m = run["machine"]
    lines = [
        f"Measured {run['when']} with `{run['command']}`"
        + (" — **BENCH_QUICK (short runs)**" if s["quick"] else ""),
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['postgres']}; load average at start "
        f"{', '.join(map(str, m['load_average_at_start']))}. Database: {s['database']}. "
        f"{s['pieces']:,} pieces; gunicorn {s['workers']} sync workers; wrk and pgbench "
        f"{s['connections']} connections, {s['threads']} threads, {s['duration_s']} s per run "
        f"after {s['warmup_s']} s warm-up.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | mean body | worker RSS peak | worker restarts "
        "| reference req/s | vs reference "
        "| HTTP floor req/s | vs HTTP floor | DB floor tx/s | DB floor p99 ms | vs DB floor "
        f"| DB floor at {s['workers']} clients | vs that |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in r.items():
        if "service" not in e:
            continue
        sv, hf, df = e["service"], e.get("http_floor"), e.get("db_floor")
        rate = f"{sv['rps']:.1f}"
        if e["kind"] != "get":
            rate += f" ({sv['inserted_per_s']:,.0f} inserted/s, {sv['updated']:,} updated)"
        db_rate = "–"
        if df:
            db_rate = f"{df['rps']:.1f}" + (f" ({df['inserted_per_s']:,.0f} rows/s, 1 conn)"
                                            if "inserted_per_s" in df else "")
        cells = [
            f"{name}: {e['title']}" + (f" ({e['note']})" if e["note"] else ""),
            rate,
            f"{sv['p50_us'] / 1000:.1f}",
            f"{sv['p99_us'] / 1000:.1f}",
            f"{sv['mean_bytes'] / 1024:.1f} KiB" if e["kind"] == "get" else "–",
            f"{sv['rss_peak_mb']:.0f} MB",
            str(sv.get("worker_restarts", "–")),
            f"{e['reference']['rps']:.1f}" if "reference" in e else "–",
            _fmt_ratio(_ratio(r, name, "reference")),
            f"{hf['rps']:.1f}" if hf else "–",
            _fmt_ratio(_ratio(r, name, "http_floor")),
            db_rate,
            f"{df['p99_us'] / 1000:.1f}" if df and "p99_us" in df else "–",
            _fmt_ratio(_ratio(r, name, "db_floor")) if df and "p99_us" in df else "–",
            f"{df['at_workers']['rps']:.1f}" if df and "at_workers" in df else "–",
            (f"{sv['rps'] / df['at_workers']['rps'] * 100:.0f} %"
             if df and "at_workers" in df else "–"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        one = e.get("one_worker")
        if one:
            lines.append("| " + " | ".join([
                f"{name} on one worker (2 connections)",
                f"{one['rps']:.1f} ({one['inserted_per_s']:,.0f} inserted/s)",
                f"{one['p50_us'] / 1000:.1f}", f"{one['p99_us'] / 1000:.1f}", "–",
                f"{one['rss_peak_mb']:.0f} MB", str(one.get("worker_restarts", "–")),
                *["–"] * 9]) + " |")
    errors = {n: e["service"]["errors"] for n, e in r.items()
              if "service" in e and e["service"]["errors"]}
    if errors:
        lines += ["", f"Errors (non-2xx, timeouts, socket): {errors}"]
    if "export" in r:
        lines += export.report_lines(r["export"])
    lines += _revalidation_lines(r)
    lines += _under_sync_lines(r.get("list_under_sync"))
    if "changes_page_through" in r:
        lines += feed.report_lines(r["changes_page_through"])
    lines += ["", "| target | measured | goal | met? |", "|---|---:|---:|---|"]
    for c in run["targets"]:
        value = c["value"]
        if value is None:
            shown = "not measured"
        elif "RSS" in c["target"]:
            shown = f"{value:.0f} MB"
        elif "pieces/s" in c["target"]:
            shown = f"{value:,.0f} /s"
        elif "p99" in c["target"] or "same" in c["target"]:
            shown = f"{value:.2f}x"
        else:
            shown = f"{value * 100:.0f} %"
        met = "–" if c["met"] is None else ("met" if c["met"] else "**missed**")
        lines.append(f"| {c['target']} | {shown} | {c['goal']} | {met} |")
    return "\n".join(lines)


def write_report(table: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n"
    if BEGIN_MARK not in text:
        text += f"\n{BEGIN_MARK}\n{END_MARK}\n"
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    REPORT.write_text(f"{head}{BEGIN_MARK}\n{table}\n{END_MARK}{tail}")


if __name__ == "__main__":
    main()
