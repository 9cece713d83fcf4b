"""Starting the workers: local processes (one GPU each where there are several), or Slurm
jobs through submitit with the settings of conf/hydra/launcher/slurm.yaml."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from phonemlp.errors import PhonemlpError
from phonemlp.search.settings import SearchSettings
from phonemlp.search.space import override_keys
from phonemlp.search.worker import process_main, worker_main

# submitit's parameters shared by every executor; any other launcher key is Slurm's own
GENERIC = {
    "timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes",
    "name", "stderr_to_stdout",
}  # fmt: skip
NOT_PARAMETERS = {"_target_", "submitit_folder", "max_num_timeout"}


def visible_gpus() -> list[str]:
    """The GPUs a local worker can be given (CUDA_VISIBLE_DEVICES, else every one found)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    try:
        found = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in found.stdout.splitlines() if line.strip()]


def worker_environments(settings: SearchSettings, fixed: list[str]) -> list[dict[str, str]]:
    """Per worker: its GPU (round-robin) or, on CPUs, its share of the cores (unless
    threads= is fixed on the command line)."""
    gpus = visible_gpus()
    environments = []
    for index in range(settings.workers):
        env: dict[str, str] = {}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        elif "threads" not in override_keys(fixed):
            share = max(1, len(os.sched_getaffinity(0)) // settings.workers)
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(share)
        environments.append(env)
    return environments


def run_local(payload: dict[str, Any], settings: SearchSettings) -> list[int]:
    """Run the workers as processes of this command; returns their exit statuses.

    The workers have their own process group: Ctrl-C (SIGINT) or SIGTERM reaches this
    command, which passes it on once to each worker (a second one stops them at once)."""
    context = multiprocessing.get_context("spawn")
    processes = []
    for index, env in enumerate(worker_environments(settings, payload["fixed"])):
        process = context.Process(target=process_main, args=(payload, index, env), daemon=False)
        process.start()
        processes.append(process)

    def forward(number: int, frame: Any) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, number)

    previous = {n: signal.signal(n, forward) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            while process.exitcode is None:
                process.join(0.5)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return [int(process.exitcode or 0) for process in processes]


def launcher_settings(settings: SearchSettings, folder: Path) -> dict[str, Any]:
    """conf/hydra/launcher/slurm.yaml (on the submitit plugin's defaults), with slurm.KEY=VALUE
    from the command line, resolved."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    overrides = [
        "hydra/launcher=slurm",
        f"hydra.launcher.submitit_folder={folder / '.submitit' / '%j'}",
        f"hydra.launcher.name=phonemlp-search-{settings.study}",
    ]
    overrides += [f"hydra.launcher.{key}={value}" for key, value in settings.slurm.items()]
    try:
        with initialize_config_module("phonemlp.conf", version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0]
        if "slurm" in first and ("not found" in first.lower() or "Could not find" in first):
            raise PhonemlpError(
                "launcher=slurm needs the submitit launcher: pip install 'phonemlp[sweep]'"
            ) from None
        raise PhonemlpError(f"slurm.*: {first}; see conf/hydra/launcher/slurm.yaml") from None
    assert isinstance(launcher, dict)
    return launcher


def make_executor(settings: SearchSettings, folder: Path, cluster: str) -> Any:
    """A submitit executor for `cluster` (slurm, or local to try the route here)."""
    import submitit

    launcher = launcher_settings(settings, folder)
    init: dict[str, Any] = {"folder": launcher["submitit_folder"]}
    if launcher.get("max_num_timeout") is not None:
        init["slurm_max_num_timeout"] = launcher["max_num_timeout"]
    try:
        executor = submitit.AutoExecutor(cluster=cluster, **init)
    except RuntimeError as error:  # no srun: not a Slurm machine
        raise PhonemlpError(
            f"launcher=slurm: {error}; run it on a Slurm login node, or use launcher=local"
        ) from None
    parameters = {
        (key if key in GENERIC else f"slurm_{key}"): value
        for key, value in launcher.items()
        if key not in NOT_PARAMETERS and value is not None
    }
    if cluster == "local":  # the Slurm-only keys do not apply to local processes
        parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
        parameters.pop("gpus_per_node", None)
    executor.update_parameters(**parameters)
    return executor


def run_submitit(payload: dict[str, Any], settings: SearchSettings, cluster: str) -> list[int]:
    """Submit the workers as jobs (a job array) and wait for them; returns their statuses.

    Each job is one worker on its own allocation. Slurm's SIGTERM before the time limit stops
    its trial after the current batch with checkpoints/last.pt saved; the next worker (a job
    still running, or one the same command submits again) resumes that trial."""
    folder = Path(payload["dir"])
    executor = make_executor(settings, folder, cluster)
    with executor.batch():
        jobs = [
            executor.submit(worker_main, payload, index, False, {})
            for index in range(settings.workers)
        ]
    print(
        f"phonemlp-search: submitted {len(jobs)} worker jobs ({', '.join(j.job_id for j in jobs)}) "
        f"to {cluster}; their output: {folder / '.submitit'}. Waiting for them; Ctrl-C here "
        f"leaves them running (phonemlp-search study={settings.study} report=true)",
        flush=True,
    )
    codes = []
    for job in jobs:
        try:
            codes.append(int(job.result() or 0))
        except Exception as error:
            first = (str(error).strip().splitlines() or [""])[0]
            print(f"phonemlp-search: job {job.job_id} ended with an error: {first}", flush=True)
            codes.append(1)
    return codes
