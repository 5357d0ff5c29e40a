"""A big, realistic instance for benchmarks: N artifacts (default 1,000,000) and M runs (default
200,000) at the current schema head, cached so that later benchmarks reuse it.

    python benchmarks/big_instance.py                       # build (or find) the default size
    python benchmarks/big_instance.py --artifacts 100000 --runs 20000
    python benchmarks/big_instance.py --cache /scratch/flowprov-bench

From another benchmark:

    from big_instance import build
    info = build(folder, artifacts=1_000_000, runs=200_000)   # -> dict: paths and notable uids

How: `flowprov init` makes the instance (every migration, so the schema and its search index
are exactly what users get), then rows go in through the standard library's sqlite3 with
executemany in one transaction — not through flowprov's API, which would take hours at this
size. The search index's triggers are dropped for the load, the index rebuilt from the tables
and the triggers made again (flowprov.search_index: the same statements the migration runs), so
the index holds what the triggers would have written. The result is checked
(`PRAGMA foreign_key_check`, counts).

What is in it (a lab's three years, deterministic: the same parameters give the same rows):

- users (people and service accounts), three storages (the local root, s3://, gs://),
  software environments (containers of nf-core processes, Python interpreters);
- transforms of three engines — a Snakemake screen pipeline and its rules, two Nextflow
  pipelines (nf-core/rnaseq, nf-core/scrnaseq) and their processes, a Prefect flow and its
  tasks — in several versions, plus scripts, uploads and notebooks (a few thousand rows);
- runs: pipeline runs with their task runs (parent links), scripts and notebooks; users;
  statuses (about 3 % failed, with error text; a few running); params; engine references;
  started/finished times spread over the months;
- artifacts with keys as labs name them (`screens/GWS_0001234/counts.tsv`, fastq.gz under
  sequencing runs, BAMs, Cell Ranger outputs, h5ad, figures, MultiQC reports), some keyless
  uploads (a file name only), descriptions on about a quarter, sizes, BLAKE3-length hashes; a
  place written again (a MultiQC report rewritten per sample) holds versions: one stem, the
  newest `is_latest`;
- run inputs and outputs: each pipeline step reads the outputs of the step before for the same
  sample, so lineage chains exist everywhere;
- notable records (their uids are returned): the notebook transform "GWS CRISPRa analysis"
  (key hit-identification.ipynb) with its run, the upload it read ("Upload GWS CRISPRa
  result"), the figure it made (an artifact whose description is "GWS CRISPRa analysis"), one
  10-step chain of script runs (its first and last artifacts), a failed run. They sit in the
  middle of the id range: neither the newest nor the oldest rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import string
import subprocess
import sys
import time
from datetime import datetime, timedelta

VERSION = 2  # bump when the content changes: cached instances of older versions are rebuilt
NAME = "bench-big"
_B62 = string.digits + string.ascii_letters
START = datetime(2023, 1, 9, 8, 0)  # UTC
SPAN_DAYS = 3 * 365

USERS = [
    ("testuser1", "Test User1"),
    ("testuser2", "Test User2"),
    ("jschmidt", "Julia Schmidt"),
    ("mkoch", "Martin Koch"),
    ("aweber", "Anna Weber"),
    ("lfischer", "Lukas Fischer"),
    ("swagner", "Sofia Wagner"),
    ("pbecker", "Paul Becker"),
    ("ehoffmann", "Emma Hoffmann"),
    ("nf-service", "Nextflow service account"),
    ("core-facility", "Sequencing core facility"),
    ("prefect-agent", "Prefect agent"),
]
SAMPLES = [f"PBMC_{i:03d}" for i in range(1, 121)] + [f"K562_{i:03d}" for i in range(1, 81)]
ERRORS = [
    "Command error: .command.sh: line 2: 41221 Killed STAR --runThreadN 8 (exit status 137: "
    "out of memory)",
    "Process `NFCORE_RNASEQ:RNASEQ:SALMON_QUANT` terminated with an error exit status (1)",
    "MissingOutputException: Job 12 completed successfully, but some output files are missing",
    "FileNotFoundError: [Errno 2] No such file or directory: 'screens/library.csv'",
    "KeyError: 'sample_sheet'",
    "CalledProcessError: Command 'cellranger count' returned non-zero exit status 1.",
]
DESCRIPTIONS = {
    "counts": "raw sgRNA counts of a genome-wide screen",
    "normalized": "median-normalized guide counts",
    "gene_summary": "MAGeCK gene summary",
    "volcano": "volcano plot of screen hits",
    "fastq": "reads from the sequencing core",
    "bam": "aligned reads, coordinate sorted",
    "quant": "Salmon transcript quantification",
    "multiqc": "MultiQC report of the pipeline run",
    "h5": "Cell Ranger filtered feature-barcode matrix",
    "h5ad": "AnnData after QC filtering",
    "umap": "UMAP of the integrated single-cell data",
}


def _uid(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(_B62, k=n))


def _ts(d: datetime) -> str:
    # how SQLAlchemy stores DateTime in SQLite: UTC, no zone, microseconds
    return d.isoformat(" ", "microseconds")


def folder_for(cache: str, artifacts: int, runs: int) -> str:
    """The cache folder of an instance of these parameters (schema head and builder version
    included: a new migration or a new builder makes a new instance)."""
    from flowprov.migrations import SCHEMA_HEAD

    return os.path.join(cache, f"big-a{artifacts}-r{runs}-s{SCHEMA_HEAD}-v{VERSION}")


def default_cache() -> str:
    return os.environ.get("FLOWPROV_BENCH_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "flowprov-bench"
    )


def _flowprov(*args: str) -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "flowprov")
    argv = [exe, *args] if os.path.isfile(exe) else [sys.executable, "-m", "flowprov.cli", *args]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"`flowprov {' '.join(args)}` failed: {r.stderr.strip()}")
    return r.stdout


def build(
    path: str | None = None, artifacts: int = 1_000_000, runs: int = 200_000, quiet: bool = False
) -> dict:
    """The instance of `artifacts` artifacts and `runs` runs under `path` (default: the cache
    folder, $FLOWPROV_BENCH_CACHE or ~/.cache/flowprov-bench), built unless already there, and
    made known to flowprov under the name "bench-big" in the current FLOWPROV_CONFIG_DIR.
    Returns its description: root, db, name, counts and the uids of notable records."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if artifacts < 1000 or runs < 100 or artifacts < runs:
        raise ValueError("need artifacts ≥ 1000, runs ≥ 100 and artifacts ≥ runs")
    folder = folder_for(path or default_cache(), artifacts, runs)
    marker = os.path.join(folder, "built.json")
    root = os.path.join(folder, "root")
    if os.path.isfile(marker):
        with open(marker) as f:
            info = json.load(f)
        say(f"reusing the instance built in {info['build_seconds']:.0f} s: {folder}")
    else:
        if os.path.exists(folder):  # an interrupted build
            shutil.rmtree(folder)
        os.makedirs(folder)
        t0 = time.perf_counter()
        _flowprov("init", "--storage", root, "--name", NAME, "--force")
        db = os.path.join(root, ".flowprov", "flowprov.sqlite")
        info = _fill(db, root, artifacts, runs, say)
        info["build_seconds"] = time.perf_counter() - t0
        info["db_bytes"] = os.path.getsize(db)
        with open(marker + ".part", "w") as f:
            json.dump(info, f, indent=1)
        os.replace(marker + ".part", marker)
        say(f"built in {info['build_seconds']:.0f} s: {folder}")
    # known here under this name (reconnects, no migration; replaces a config of that name left
    # by an older build of the cache)
    _flowprov("init", "--storage", root, "--name", NAME, "--force")
    info["name"] = NAME
    say(
        f"  {info['counts']['artifacts']:,} artifacts, {info['counts']['runs']:,} runs, "
        f"{info['counts']['transforms']:,} transforms, {info['counts']['users']} users, "
        f"{info['counts']['storages']} storages, {info['counts']['environments']} environments, "
        f"{info['counts']['run_inputs']:,} run inputs, {info['counts']['run_outputs']:,} run "
        f"outputs; database {info['db_bytes'] / 1e6:,.0f} MB ({info['db']})"
    )
    say("  notable: " + ", ".join(f"{k} {v}" for k, v in info["notable"].items()))
    return info


class _Rows:
    """Rows to insert, ids handed out in order (parents before children)."""

    def __init__(self, con: sqlite3.Connection, table: str):
        self.table = table
        self.rows: list[tuple] = []
        self.next = (con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1

    def add(self, row: tuple) -> int:
        rid = self.next
        self.next += 1
        self.rows.append((rid, *row))
        return rid


def _fill(db: str, root: str, n_art: int, n_runs: int, say) -> dict:
    from flowprov.search_index import (
        SEARCH_COLUMNS,
        fts_name,
        sqlite_index_statements,
        sqlite_rebuild_statements,
    )
    from flowprov.uids import version_suffix

    rng = random.Random(20260101 + n_art + n_runs)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    for table in SEARCH_COLUMNS:  # the index is rebuilt once at the end
        for what in ("insert", "update", "delete"):
            con.execute(f'DROP TRIGGER IF EXISTS "{fts_name(table)}_{what}"')
    con.execute("BEGIN IMMEDIATE")
    t0 = time.perf_counter()
    storage_local = con.execute("SELECT id FROM storages").fetchone()[0]
    first_user = con.execute("SELECT id FROM users").fetchone()[0]

    def at(frac: float) -> datetime:
        return START + timedelta(days=SPAN_DAYS * frac, seconds=rng.randint(0, 3600))

    # -- users, storages, environments --
    users = _Rows(con, "users")
    t_made = _ts(START)
    user_ids = [first_user]
    for handle, name in USERS:
        user_ids.append(users.add((_uid(rng, 8), handle, name, t_made, t_made)))
    storages = _Rows(con, "storages")
    s3 = storages.add(
        (_uid(rng, 12), "s3://lab-raw-data", "s3", "eu-central-1", "raw data from the core",
         0, None, user_ids[1], t_made, t_made)
    )  # fmt: skip
    gs = storages.add(
        (_uid(rng, 12), "gs://lab-results", "gs", "europe-west3", "shared results", 0, None,
         user_ids[2], t_made, t_made)
    )  # fmt: skip
    envs = _Rows(con, "environments")
    images = [
        "quay.io/biocontainers/fastqc:0.12.1--hdfd78af_0",
        "quay.io/biocontainers/trim-galore:0.6.7--hdfd78af_0",
        "quay.io/biocontainers/star:2.7.10a--h9ee0642_0",
        "quay.io/biocontainers/samtools:1.17--h00cdaf9_0",
        "quay.io/biocontainers/salmon:1.10.1--h7e5ed60_0",
        "quay.io/biocontainers/multiqc:1.19--pyhdfd78af_0",
        "nfcore/cellranger:7.1.0",
        "nfcore/cellranger:7.2.0",
    ]
    env_ids = []
    for img in images:
        env_ids.append(
            envs.add(
                (
                    _uid(rng, 16),
                    f"{rng.getrandbits(256):064x}",
                    None,
                    "linux",
                    img,
                    f"sha256:{rng.getrandbits(256):064x}",
                    "docker",
                    None,
                    1,
                    0,
                    0,
                    None,
                    user_ids[10],
                    t_made,
                )
            )  # fmt: skip
        )
    for py in ("3.10.13", "3.11.7", "3.12.1"):
        env_ids.append(
            envs.add(
                (
                    _uid(rng, 16),
                    f"{rng.getrandbits(256):064x}",
                    f"CPython {py}",
                    "linux",
                    None,
                    None,
                    None,
                    None,
                    1,
                    1,
                    rng.randint(80, 400),
                    None,
                    user_ids[3],
                    t_made,
                )
            )  # fmt: skip
        )

    # -- transforms --
    tfs = _Rows(con, "transforms")

    def transform(name, key, ttype, version, parent=None, description=None, reference=None,
                  user=None, made=START, source=None) -> int:  # fmt: skip
        family = f"key:{key}" if key else f"{ttype}:{name}"
        code_hash = f"{rng.getrandbits(128):032x}" if source else None
        return tfs.add(
            (_uid(rng, 16), _uid(rng, 12), family, f"{version or ''}|{code_hash or ''}", name,
             key, description, ttype, version, 1, reference, "url" if reference else None,
             source, code_hash, parent, user or rng.choice(user_ids), _ts(made), _ts(made))
        )  # fmt: skip

    pipelines = {}  # engine pipeline -> (pipeline transform versions, {step: [transform ids]})
    specs = {
        "snakemake": (
            "screen-analysis",
            "github.com/schmidtlab/screen-analysis/workflow/Snakefile",
            ["count_guides", "normalize", "mageck_test", "plot_hits", "qc_report"],
            ["1.2.0", "1.3.0", "2.0.0"],
        ),
        "nextflow": (
            "nf-core/rnaseq",
            "nf-core/rnaseq",
            [
                "NFCORE_RNASEQ:RNASEQ:FASTQC",
                "NFCORE_RNASEQ:RNASEQ:TRIMGALORE",
                "NFCORE_RNASEQ:RNASEQ:STAR_ALIGN",
                "NFCORE_RNASEQ:RNASEQ:SAMTOOLS_SORT",
                "NFCORE_RNASEQ:RNASEQ:SALMON_QUANT",
                "NFCORE_RNASEQ:RNASEQ:MULTIQC",
            ],
            ["3.12.0", "3.14.0"],
        ),
        "nextflow-sc": (
            "nf-core/scrnaseq",
            "nf-core/scrnaseq",
            [
                "NFCORE_SCRNASEQ:SCRNASEQ:FASTQC",
                "NFCORE_SCRNASEQ:SCRNASEQ:CELLRANGER_ALIGN:CELLRANGER_COUNT",
                "NFCORE_SCRNASEQ:SCRNASEQ:MTX_CONVERSION",
                "NFCORE_SCRNASEQ:SCRNASEQ:MULTIQC",
            ],
            ["2.4.1", "2.5.1"],
        ),
        "prefect": (
            "integrate-scrna",
            "flows/integrate_scrna.py:integrate_scrna",
            ["load_matrices", "qc_filter", "integrate", "cluster", "umap_plot"],
            ["0.9", "1.0", "1.1"],
        ),
    }
    for eng, (pname, pkey, steps, versions) in specs.items():
        ptype, stype = {
            "snakemake": ("pipeline", "rule"),
            "nextflow": ("pipeline", "process"),
            "nextflow-sc": ("pipeline", "process"),
            "prefect": ("flow", "task"),
        }[eng]
        pv, sv = [], {s: [] for s in steps}
        for v in versions:
            p = transform(pname, pkey, ptype, v, reference=f"https://github.com/{pname}")
            pv.append(p)
            for s in steps:
                sv[s].append(transform(s, f"{pkey}:{s}", stype, v, parent=p))
        pipelines[eng] = (pv, sv)
    scripts = []
    n_scripts = max(20, n_runs // 100)
    for k in range(n_scripts):
        user = rng.choice(user_ids)
        made = at(k / n_scripts)
        if k % 10 == 0:
            name = f"Exploratory analysis of {rng.choice(SAMPLES)}"
            key, ttype = f"notebooks/explore_{k:05d}.ipynb", "notebook"
        else:
            stem = rng.choice(["plot", "merge", "filter", "export", "qc", "annotate", "convert"])
            name = f"{stem}_{rng.choice(['counts', 'samples', 'hits', 'cells', 'reads'])}_{k}.py"
            key, ttype = f"scripts/{name}", "script"
        for v in range(rng.choice((1, 1, 1, 2, 3))):
            scripts.append(transform(name, key, ttype, str(v + 1), user=user, made=made,
                                     source=f"# {name} v{v + 1}\n"))  # fmt: skip
    seq_upload = transform("Sequencer upload", "upload_fastq.py", "script", "1", user=user_ids[11])
    chain_tf = transform("chain_step.py", "scripts/chain_step.py", "script", "1")

    # -- runs and artifacts --
    run_rows = _Rows(con, "runs")
    art_rows = _Rows(con, "artifacts")
    ins: list[tuple] = []
    outs: list[tuple] = []
    per_run = 0.97 * n_art / n_runs  # artifacts per run, on average (topped up at the end)
    screen_no = [0]
    notable: dict[str, str] = {}

    def run(tf, name, started, user, engine=None, ref=None, ref_type=None, parent=None,
            status=None, params=None, env=None) -> tuple[int, str, datetime]:  # fmt: skip
        status = status or ("failed" if rng.random() < 0.03 else "completed")
        dur = timedelta(seconds=rng.randint(20, 4 * 3600))
        finished = None if status == "started" else started + dur
        error = rng.choice(ERRORS) if status == "failed" else None
        uid = _uid(rng, 20)
        rid = run_rows.add(
            (uid, tf, name, _ts(started), _ts(finished) if finished else None, status,
             json.dumps(params) if params else None,
             json.dumps({"exit_code": 1 if status == "failed" else 0}) if finished else None,
             env, error, parent, engine, ref, ref_type, user, _ts(started), _ts(started))
        )  # fmt: skip
        return rid, uid, finished or started

    places: dict[tuple[int, str], tuple[int, str, int]] = {}  # place -> (row, stem, versions)

    def artifact(key, run_id, user, made, suffix, storage=storage_local, description=None,
                 file_name=None) -> tuple[int, str]:  # fmt: skip
        """A new artifact; at a place seen before, its next version (same stem, the earlier
        version no longer the latest)."""
        seen = places.get((storage, key)) if key is not None else None
        if seen is None:
            stem, n = _uid(rng, 16), 0
        else:
            row, stem, n = seen
            old = art_rows.rows[row]
            art_rows.rows[row] = old[:15] + (0,) + old[16:]
        uid = stem + version_suffix(n)
        if key is not None:
            places[(storage, key)] = (len(art_rows.rows), stem, n + 1)
        when = _ts(made)
        aid = art_rows.add(
            (uid, stem, key, 0, description, suffix, rng.randint(10**3, 5 * 10**9),
             f"{rng.getrandbits(256):064x}", "blake3", file_name, None, None, None, 1, 1,
             0, storage, run_id, user, when, when)
        )  # fmt: skip
        if run_id is not None:
            outs.append((run_id, aid, when))
        return aid, uid

    def outputs_of(eng, step_i, step, sample, prun_tag, k) -> list[tuple[str, str, str | None]]:
        """(key, suffix, description) of one task's outputs."""
        n = max(1, round(rng.gauss(per_run, per_run / 3)))
        out = []
        for j in range(n):
            desc = None
            if eng == "snakemake":
                sc = f"GWS_{screen_no[0]:07d}"
                screen_no[0] += 1
                kind = ["counts", "normalized", "gene_summary", "volcano", "qc"][step_i]
                key = {
                    "counts": f"screens/{sc}/counts.tsv",
                    "normalized": f"screens/{sc}/normalized.tsv",
                    "gene_summary": f"screens/{sc}/mageck/gene_summary.txt",
                    "volcano": f"figures/screens/{sc}/volcano.pdf",
                    "qc": f"screens/{sc}/qc.html",
                }[kind]
                if rng.random() < 0.25:
                    desc = f"{DESCRIPTIONS.get(kind, 'screen QC')} {sc}"
            elif eng in ("nextflow", "nextflow-sc"):
                short = step.rsplit(":", 1)[-1]
                r = j % 2 + 1
                key = {
                    "FASTQC": f"{prun_tag}/fastqc/{sample}_{k}_R{r}_fastqc.zip",
                    "TRIMGALORE": f"{prun_tag}/trimgalore/{sample}_{k}_R{r}_trimmed.fq.gz",
                    "STAR_ALIGN": f"{prun_tag}/star/{sample}_{k}.Aligned.out.bam",
                    "SAMTOOLS_SORT": f"{prun_tag}/star/{sample}_{k}.sorted.bam",
                    "SALMON_QUANT": f"{prun_tag}/salmon/{sample}_{k}/quant.sf",
                    "MULTIQC": f"{prun_tag}/multiqc/multiqc_report.html"
                    if not j
                    else f"{prun_tag}/multiqc/multiqc_data/multiqc_{j}.txt",
                    "CELLRANGER_COUNT": f"{prun_tag}/cellranger/{sample}_{k}/outs/"
                    + [
                        "filtered_feature_bc_matrix.h5",
                        "possorted_genome_bam.bam",
                        "web_summary.html",
                    ][j % 3],  # fmt: skip
                    "MTX_CONVERSION": f"{prun_tag}/mtx/{sample}_{k}_matrix.h5ad",
                }[short]
                if j:
                    key = key.replace(f"{sample}_{k}", f"{sample}_{k}_{j}")
                if rng.random() < 0.2:
                    kind = {"STAR_ALIGN": "bam", "SAMTOOLS_SORT": "bam", "SALMON_QUANT": "quant",
                            "MULTIQC": "multiqc", "CELLRANGER_COUNT": "h5",
                            "MTX_CONVERSION": "h5ad"}.get(short, "fastq")  # fmt: skip
                    desc = f"{DESCRIPTIONS[kind]}, sample {sample}"
            else:
                kind = step
                key = {
                    "load_matrices": f"scrna/{prun_tag}/raw_{sample}_{j}.h5ad",
                    "qc_filter": f"scrna/{prun_tag}/qc_{sample}_{j}.h5ad",
                    "integrate": f"scrna/{prun_tag}/integrated_{j}.h5ad",
                    "cluster": f"scrna/{prun_tag}/clusters_{j}.csv",
                    "umap_plot": f"figures/{prun_tag}/umap_{j}.png",
                }[step]
                if rng.random() < 0.3:
                    desc = DESCRIPTIONS["umap" if step == "umap_plot" else "h5ad"]
            suffix = "." + key.rsplit(".", 2)[-1] if not key.endswith(".gz") else ".fq.gz"
            if key.endswith(".fastq.gz"):
                suffix = ".fastq.gz"
            out.append((key, suffix, desc))
        return out

    def special(frac_done: float) -> None:
        """The records of the demo's story, placed mid-range once."""
        if "notebook" in notable or frac_done < 0.4:
            return
        started = at(0.4)
        up_tf = transform("Upload GWS CRISPRa result", "upload_crispra_result.py", "upload",
                          "1", user=user_ids[1], made=started)  # fmt: skip
        nb_tf = transform("GWS CRISPRa analysis", "hit-identification.ipynb", "notebook", "1",
                          user=user_ids[2], made=started,
                          source='{"cells": [{"source": "import mageck"}]}')  # fmt: skip
        rid, ruid, fin = run(up_tf, None, started, user_ids[1], status="completed")
        aid, auid = artifact("screens/gws_crispra_result.parquet", rid, user_ids[1], fin,
                             ".parquet", description="GWS CRISPRa screen result")  # fmt: skip
        rid2, ruid2, fin2 = run(nb_tf, None, fin + timedelta(hours=2), user_ids[2],
                                status="completed", params={"fdr": 0.05, "min_lfc": 1.0},
                                env=env_ids[-2])  # fmt: skip
        ins.append((rid2, aid, _ts(fin2)))
        fid, fuid = artifact("figures/gws_crispra/hits_volcano.pdf", rid2, user_ids[2], fin2,
                             ".pdf", description="GWS CRISPRa analysis")  # fmt: skip
        notable.update(
            notebook=con_uid(nb_tf), notebook_run=ruid2, upload=con_uid(up_tf),
            screen_result=auid, figure=fuid,
        )  # fmt: skip
        prev = fid
        for step in range(10):  # one 10-step chain of script runs
            crid, _, cfin = run(chain_tf, f"chain step {step + 1}", fin2 + timedelta(hours=step),
                                user_ids[3], status="completed", params={"step": step + 1})  # fmt: skip
            ins.append((crid, prev, _ts(cfin)))
            prev, puid = artifact(f"chain/step{step + 1:02d}.parquet", crid, user_ids[3], cfin,
                                  ".parquet", description=f"chain step {step + 1}")  # fmt: skip
            if step == 0:
                notable["chain_start"] = puid
        notable["chain_end"] = puid

    tf_uids: dict[int, str] = {}

    def con_uid(tf_id: int) -> str:
        if tf_id not in tf_uids:
            for row in tfs.rows:
                if row[0] == tf_id:
                    tf_uids[tf_id] = row[1]
        return tf_uids[tf_id]

    # pipelines: each launch = one top-level run + per sample, one task per step
    engines = ["snakemake"] * 4 + ["nextflow"] * 3 + ["nextflow-sc"] * 2 + ["prefect"]
    launch = 0
    while run_rows.next - 1 < n_runs * 0.9:
        frac = (run_rows.next - 1) / n_runs
        special(frac)
        eng = rng.choice(engines)
        pv, sv = pipelines[eng]
        vi = min(len(pv) - 1, int(frac * len(pv)))
        user = rng.choice(user_ids)
        started = at(frac)
        tag = {"snakemake": "screens", "prefect": "scrna"}.get(eng, "rnaseq")
        prun_tag = f"{tag}_{launch:06d}"
        engine = "nextflow" if eng.startswith("nextflow") else eng
        wf_ref = (
            f"{_uid(rng, 8).lower()}-{_uid(rng, 4).lower()}"
            if engine != "nextflow"
            else f"{rng.choice(['happy', 'lonely', 'stoic', 'zen'])}_{rng.choice(['curie', 'turing', 'hopper'])}_{launch}"
        )
        params = {"genome": rng.choice(["GRCh38", "GRCm39"]), "outdir": prun_tag}
        if eng == "snakemake":
            params["fdr"] = rng.choice([0.01, 0.05, 0.1])
        prid, _, _ = run(pv[vi], f"{specs[eng][0]} {prun_tag}", started, user, engine, wf_ref,
                         f"{engine} run", params=params)  # fmt: skip
        launch += 1
        samples = rng.sample(SAMPLES, rng.randint(2, 8))
        steps = specs[eng][2]
        when = started
        for k, sample in enumerate(samples):
            prev_outs: list[int] = []
            for si, step in enumerate(steps):
                when = when + timedelta(minutes=rng.randint(1, 30))
                if engine == "nextflow":
                    h = f"{rng.getrandbits(128):032x}"
                    ref, rtype = f"{h[:2]}/{h[2:]}", "nextflow task hash"
                    name = f"{step} ({sample})"
                elif engine == "snakemake":
                    ref, rtype = f"{wf_ref}/{si * 100 + k}", "snakemake jobid"
                    name = f"{step} {si * 100 + k}"
                else:
                    ref, rtype = f"{_uid(rng, 8).lower()}-{si}-{k}", "prefect task run"
                    name = f"{step}-{_uid(rng, 3).lower()}"
                env = env_ids[min(si, 7)] if engine == "nextflow" else None
                trid, _, fin = run(sv[step][vi], name, when, user, engine, ref, rtype, prid,
                                   env=env)  # fmt: skip
                for aid in prev_outs[: rng.choice((1, 2))]:
                    ins.append((trid, aid, _ts(when)))
                prev_outs = []
                for key, suffix, desc in outputs_of(eng, si, step, sample, prun_tag, k):
                    storage = gs if eng == "prefect" and rng.random() < 0.5 else storage_local
                    aid, _ = artifact(key, trid, user, fin, suffix, storage, desc)
                    prev_outs.append(aid)
                if run_rows.next - 1 >= n_runs * 0.9:
                    break
    # scripts, notebooks, sequencer uploads: the remaining runs
    seq_run = 0
    while run_rows.next - 1 < n_runs:
        frac = (run_rows.next - 1) / n_runs
        started = at(frac)
        user = rng.choice(user_ids)
        if rng.random() < 0.3:
            rid, _, fin = run(seq_upload, None, started, user_ids[11])
            seq_run += 1
            for j in range(max(1, round(per_run))):
                sample = rng.choice(SAMPLES)
                key = (f"sequencing/run_{seq_run:05d}/fastq/{sample}_S{j + 1}_L00{j % 4 + 1}"
                       f"_R{j % 2 + 1}_001.fastq.gz")  # fmt: skip
                artifact(key, rid, user_ids[11], fin, ".fastq.gz", s3,
                         DESCRIPTIONS["fastq"] if rng.random() < 0.2 else None)  # fmt: skip
        else:
            tf = rng.choice(scripts)
            status = "started" if rng.random() < 0.002 else None
            rid, uid, fin = run(tf, None, started, user, status=status,
                                params={"threshold": rng.choice([0.1, 0.5, 1])},
                                env=rng.choice(env_ids[-3:]))  # fmt: skip
            for j in range(max(1, round(rng.gauss(per_run, 1)))):
                what = rng.choice(["csv", "png", "pdf", "parquet"])
                artifact(f"analysis/{USERS[user % len(USERS)][0]}/result_{rid}_{j}.{what}", rid,
                         user, fin, f".{what}")  # fmt: skip
    # top up (or trim) to exactly n_art artifacts: keyless uploads, as `fp.Artifact(path)` makes
    over = len(art_rows.rows) - n_art
    if over > 0:
        keep = {notable[k] for k in ("screen_result", "figure", "chain_start", "chain_end")}
        drop = set()
        for row in reversed(art_rows.rows):
            if len(drop) >= over:
                break
            if row[1] not in keep:
                drop.add(row[0])
        art_rows.rows = [r for r in art_rows.rows if r[0] not in drop]
        outs[:] = [o for o in outs if o[1] not in drop]
        ins[:] = [i for i in ins if i[1] not in drop]
        last = {(r[17], r[3]): i for i, r in enumerate(art_rows.rows) if r[3] is not None}
        art_rows.rows = [
            r[:15] + (int(r[3] is None or last[(r[17], r[3])] == i),) + r[16:]
            for i, r in enumerate(art_rows.rows)
        ]
        places.clear()
    while len(art_rows.rows) < n_art:
        i = len(art_rows.rows)
        name = rng.choice(["plate_layout", "sample_sheet", "library", "protocol", "notes"])
        artifact(None, None, rng.choice(user_ids), at(i / n_art), ".xlsx",
                 file_name=f"{name}_{i}.xlsx",
                 description="uploaded by hand" if rng.random() < 0.3 else None)  # fmt: skip
    if "failed_run" not in notable:
        for row in run_rows.rows:
            if row[6] == "failed":
                notable["failed_run"] = row[1]
                break
    say(f"  generated the rows in {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)", users.rows)
    con.executemany(
        "INSERT INTO storages (id, uid, root, type, region, description, is_default, options,"
        " created_by_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        storages.rows,
    )
    con.executemany(
        "INSERT INTO environments (id, uid, hash, interpreter, os, container_image,"
        " container_digest, container_engine, spec_file_id, deployed, complete, n_packages,"
        " details, created_by_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        envs.rows,
    )
    con.executemany(
        "INSERT INTO transforms (id, uid, stem, family, version_tag, name, key, description,"
        " type, version, is_latest, reference, reference_type, source_code, hash, parent_id,"
        " created_by_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        tfs.rows,
    )
    con.executemany(
        "INSERT INTO runs (id, uid, transform_id, name, started_at, finished_at, status, params,"
        " runtime, environment_id, error, parent_id, engine, reference, reference_type,"
        " created_by_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        run_rows.rows,
    )
    con.executemany(
        "INSERT INTO artifacts (id, uid, stem, key, key_is_virtual, description, suffix, size,"
        " hash, hash_type, file_name, removed, removed_at, checksums, n_objects, is_latest,"
        " managed, storage_id, run_id, created_by_id, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        art_rows.rows,
    )
    con.executemany("INSERT OR IGNORE INTO run_outputs VALUES (?,?,?)", outs)
    con.executemany("INSERT OR IGNORE INTO run_inputs VALUES (?,?,?)", ins)
    con.execute("COMMIT")
    say(f"  inserted them (stdlib sqlite3, executemany, one transaction) in "
        f"{time.perf_counter() - t1:.1f} s")  # fmt: skip
    t2 = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    for table, cols in SEARCH_COLUMNS.items():
        for stmt in sqlite_rebuild_statements(table) + sqlite_index_statements(table, cols):
            con.execute(stmt)
    con.execute("COMMIT")
    say(f"  rebuilt the search index and made its triggers again in "
        f"{time.perf_counter() - t2:.1f} s")  # fmt: skip
    bad = con.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise SystemExit(f"the built instance breaks foreign keys: {bad[:5]}")
    con.execute("ANALYZE")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in (
            "users",
            "storages",
            "environments",
            "transforms",
            "runs",
            "artifacts",
            "run_inputs",
            "run_outputs",
        )  # fmt: skip
    }
    con.close()
    if counts["artifacts"] != n_art or counts["runs"] != n_runs:
        raise SystemExit(f"built {counts} instead of {n_art} artifacts and {n_runs} runs")
    return {"root": root, "db": db, "counts": counts, "notable": notable}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=200_000)
    ap.add_argument("--cache", default=None, help="cache folder (default ~/.cache/flowprov-bench)")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import temp_base

    with temp_base("big"):  # a throwaway config dir: the instance itself stays in the cache
        build(a.cache, a.artifacts, a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
