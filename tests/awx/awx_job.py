"""Run a job the way AWX / Automation Controller runs it: ansible-runner on a private_data_dir laid out as AWX
lays it out, with the collection installed from its tarball by the project's collections/requirements.yml.

    private_data_dir/
      project/                     the project: the one-line wrapper playbooks (playbooks/awx/project/) and
        collections/requirements.yml   the collection, `type: file`: the tarball of `make dist`, committed
        collections/indexops-redis_search-<version>.tar.gz   beside it
      requirements_collections/    what the project update installed from that requirements file
      inventory/hosts.yml          the inventory, with per-host variables
      env/extravars                the survey's answers (and the job template's extra variables)
      env/envvars                  what the credential injects: REDIS_USERNAME, REDIS_PASSWORD
      env/cmdline                  --check for a Check job, --diff for "Show changes"
      artifacts/<ident>/           ansible-runner's record: events, stdout, status, rc

To add a job: build its extra variables with `survey_answers()`, call `AwxSite.job()` (or `start()` for a job
that runs while the test does something else - another job, a cancel), and assert on the JobResult (status, rc,
stats, per-task results by host, stdout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import ansible_runner
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PROJECT = os.path.join(ROOT, "playbooks", "awx", "project")
MIGRATE_SURVEY = os.path.join(ROOT, "playbooks", "awx", "migrate_survey.json")
# The credential type of docs/awx.md injects these.
CREDENTIAL_VARIABLES = ("REDIS_USERNAME", "REDIS_PASSWORD")
# AWX's survey question types and the JSON type each answer reaches the playbook as.
ANSWER_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "integer": int, "float": float}


def build_tarball(dest: str) -> str:
    """`make dist`: the collection's tarball, built from this checkout into `dest`."""
    subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", dest, ROOT],
        check=True,
        capture_output=True,
        env=quiet_ansible_env(dest),
    )
    (tarball,) = [name for name in os.listdir(dest) if name.endswith(".tar.gz")]
    return os.path.join(dest, tarball)


def quiet_ansible_env(home: str) -> Dict[str, str]:
    """ansible-galaxy's state under `home`, never ~/.ansible; no inherited collections path (make's names the
    checkout, where ansible-galaxy would find the collection installed already and install nothing)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS")
    }
    env.update(
        {
            "ANSIBLE_HOME": os.path.join(home, ".ansible"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": BIN + os.pathsep + env.get("PATH", ""),
        }
    )
    return env


def survey_answers(survey_path: str = MIGRATE_SURVEY, **answers: Any) -> Dict[str, Any]:
    """Extra variables as AWX sends them when a survey is launched: every question's answer (its default unless
    given), each as the JSON type of its question type. Raises when an answer names no question."""
    with open(survey_path, encoding="utf-8") as handle:
        spec = json.load(handle)["spec"]
    questions = {question["variable"]: question for question in spec}
    unknown = set(answers) - set(questions)
    if unknown:
        raise AssertionError(f"the survey has no question {sorted(unknown)}: pass them as job extra vars instead")
    values = {}
    for name, question in questions.items():
        value = answers.get(name, question.get("default", ""))
        if question["type"] == "multiplechoice" and value not in question["choices"]:
            raise AssertionError(f"{name}: {value!r} is not one of {question['choices']}")
        values[name] = ANSWER_TYPES[question["type"]](value)
    return values


@dataclass
class JobResult:
    """What AWX shows of a finished job: its status, return code, events and output."""

    status: str
    rc: int
    events: List[Dict[str, Any]]
    stdout: str
    private_data_dir: str

    @property
    def stats(self) -> Dict[str, Dict[str, int]]:
        """The play recap, {counter: {host: n}} (changed, ok, failures, skipped, ...)."""
        for event in self.events:
            if event["event"] == "playbook_on_stats":
                return {key: value for key, value in event["event_data"].items() if isinstance(value, dict)}
        raise AssertionError("the job has no playbook_on_stats event")

    def changed_hosts(self) -> Dict[str, int]:
        return self.stats.get("changed", {})

    def results(self, task: str) -> Dict[str, Dict[str, Any]]:
        """{host: {'event': runner_on_ok|runner_on_failed|runner_on_skipped, 'res': the module's result}} of the
        task named `task` (its last run on each host)."""
        found = {}
        for event in self.events:
            data = event.get("event_data", {})
            if event["event"].startswith("runner_on_") and data.get("task") == task:
                found[data["host"]] = {"event": event["event"], "res": data.get("res", {})}
        return found

    def task_names(self) -> List[str]:
        return [event["event_data"]["task"] for event in self.events if event["event"] == "playbook_on_task_start"]

    def explain(self) -> str:
        """For assertion messages: the end of the job's output."""
        return f"status={self.status} rc={self.rc}\n{self.stdout[-6000:]}"


@dataclass
class AwxSite:
    """One AWX 'site': a project (wrapper playbooks and the collection from its tarball, installed once, as a
    project update does), an inventory and a credential. Each job gets a fresh private_data_dir."""

    workdir: str
    tarball: str
    inventory: Dict[str, Any] = field(default_factory=dict)
    credential: Dict[str, str] = field(default_factory=dict)
    _installed: Optional[str] = None
    _jobs: int = 0

    def project_update(self) -> str:
        """The project (playbooks/awx/project/ and collections/requirements.yml naming the tarball, type file) and
        `ansible-galaxy collection install -r collections/requirements.yml`, as AWX's project update runs it."""
        if self._installed:
            return self._installed
        project = os.path.join(self.workdir, "project")
        shutil.copytree(PROJECT, project)
        # The tarball is committed to the project beside the requirements file; AWX's project update runs
        # ansible-galaxy in the project's root, which a relative file name is resolved from.
        os.makedirs(os.path.join(project, "collections"))
        shutil.copy(self.tarball, os.path.join(project, "collections"))
        relative = "collections/" + os.path.basename(self.tarball)
        with open(os.path.join(project, "collections", "requirements.yml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump({"collections": [{"name": relative, "type": "file"}]}, handle)
        installed = os.path.join(self.workdir, "requirements_collections")
        subprocess.run(
            [
                os.path.join(BIN, "ansible-galaxy"),
                "collection",
                "install",
                "-r",
                os.path.join(project, "collections", "requirements.yml"),
                "-p",
                installed,
            ],
            check=True,
            capture_output=True,
            env=quiet_ansible_env(self.workdir),
            cwd=project,
        )
        self._installed = installed
        return installed

    def job(
        self,
        playbook: str,
        extravars: Optional[Dict[str, Any]] = None,
        check: bool = False,
        diff: bool = False,
        limit: Optional[str] = None,
        timeout: int = 300,
        **runner_options: Any,
    ) -> JobResult:
        """Launch a job template of `playbook` (a file of the project) and wait for it. `runner_options` go to
        ansible_runner.run as they are (cancel_callback, event_handler, status_handler, ...)."""
        pdd = self.prepare(extravars, check=check, diff=diff, limit=limit)
        runner = ansible_runner.run(**self.runner_arguments(pdd, playbook, timeout), **runner_options)
        return self.result(runner, pdd)

    def start(
        self,
        playbook: str,
        extravars: Optional[Dict[str, Any]] = None,
        check: bool = False,
        diff: bool = False,
        limit: Optional[str] = None,
        timeout: int = 300,
        **runner_options: Any,
    ):
        """Launch a job without waiting: (thread, runner, private_data_dir). Join the thread, then `result()`."""
        pdd = self.prepare(extravars, check=check, diff=diff, limit=limit)
        thread, runner = ansible_runner.run_async(**self.runner_arguments(pdd, playbook, timeout), **runner_options)
        return thread, runner, pdd

    def prepare(
        self,
        extravars: Optional[Dict[str, Any]] = None,
        check: bool = False,
        diff: bool = False,
        limit: Optional[str] = None,
    ) -> str:
        """A fresh private_data_dir for one job, laid out as AWX lays it out."""
        installed = self.project_update()
        self._jobs += 1
        pdd = os.path.join(self.workdir, f"job-{self._jobs}")
        shutil.copytree(os.path.join(self.workdir, "project"), os.path.join(pdd, "project"))
        os.symlink(installed, os.path.join(pdd, "requirements_collections"))
        self._write(pdd, "inventory/hosts.yml", yaml.safe_dump(self.inventory, sort_keys=False))
        self._write(pdd, "env/extravars", yaml.safe_dump(extravars or {}))
        self._write(pdd, "env/envvars", yaml.safe_dump(self.credential))
        cmdline = (["--check"] if check else []) + (["--diff"] if diff else []) + (["--limit", limit] if limit else [])
        if cmdline:
            self._write(pdd, "env/cmdline", " ".join(cmdline))
        return pdd

    @staticmethod
    def runner_arguments(pdd: str, playbook: str, timeout: int) -> Dict[str, Any]:
        return {
            "private_data_dir": pdd,
            "playbook": playbook,
            "quiet": True,
            "timeout": timeout,
            # What the job's environment has besides the credential: AWX points Ansible at the project's
            # installed collections; its state and temporary files stay inside the job's directory.
            "envvars": {
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(pdd, "requirements_collections"),
                "ANSIBLE_HOME": os.path.join(pdd, ".ansible"),
                "ANSIBLE_REMOTE_TEMP": os.path.join(pdd, ".ansible", "tmp"),
                "ANSIBLE_NOCOLOR": "1",
                "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
                "REDIS_URL": "",  # only what the inventory and the credential say
            },
        }

    @staticmethod
    def result(runner: Any, pdd: str) -> JobResult:
        """What AWX shows of a finished job."""
        with open(runner.stdout.name, encoding="utf-8") as handle:
            stdout = handle.read()
        return JobResult(
            status=runner.status, rc=runner.rc, events=list(runner.events), stdout=stdout, private_data_dir=pdd
        )

    @staticmethod
    def _write(pdd: str, relative: str, text: str) -> None:
        path = os.path.join(pdd, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def redis_inventory(
    urls: Dict[str, str], group_vars: Dict[str, Any], host_vars: Optional[Dict[str, Dict[str, Any]]] = None
) -> Dict[str, Any]:
    """The inventory of docs/awx.md: one host per Redis server in group redis_search, connection local, the
    interpreter that runs ansible-playbook, redis_url per host; more per-host variables from `host_vars`."""
    hosts = {host: {"redis_url": url, **(host_vars or {}).get(host, {})} for host, url in urls.items()}
    return {
        "redis_search": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                **group_vars,
            },
            "hosts": hosts,
        }
    }


def hosts_of(results: Dict[str, Dict[str, Any]], event: str) -> List[str]:
    return sorted(host for host, found in results.items() if found["event"] == event)
