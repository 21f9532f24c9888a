#!/usr/bin/env python3
"""The shipwatch GitHub Action: tell a shipwatch server about a deploy, wait for its commit range, and write the
release report to the job summary. Standard library only, so the runner needs no build or install step.

Inputs arrive as environment variables (set by action.yml from the action's inputs); results go to $GITHUB_OUTPUT
and $GITHUB_STEP_SUMMARY. A failure is a warning unless `fail-on-error` is true: a shipwatch outage must not fail a
deploy pipeline unless asked.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def env(name, default=""):
    return os.environ.get(name, default).strip()


class Failure(Exception):
    pass


def call(method, url, token, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("User-Agent", "shipwatch-action")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as e:
        detail = ""
        try:
            detail = json.loads(e.read().decode()).get("detail", "")
        except Exception:
            pass
        hint = {
            401: " Check the token input: it must be the project's deploy token (from a secret).",
            404: " Check the project input: is the project name right?",
            422: " A field was refused.",
        }.get(e.code, "")
        raise Failure(f"the shipwatch server answered HTTP {e.code}: {detail or e.reason}.{hint}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise Failure(f"could not reach the shipwatch server at {url.split('/api/')[0]}: {reason}")


def append(path_var, text):
    path = os.environ.get(path_var)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def output(name, value):
    append("GITHUB_OUTPUT", f"{name}={value}\n")


def run():
    server = env("SHIPWATCH_SERVER").rstrip("/")
    token = env("SHIPWATCH_DEPLOY_TOKEN")
    if token:
        # Masked before anything else is printed.
        print(f"::add-mask::{token}")
    missing = [n for n, v in [("server-url", server), ("token", token), ("project", env("SHIPWATCH_PROJECT")),
                              ("environment", env("SHIPWATCH_ENVIRONMENT"))] if not v]
    if missing:
        raise Failure("missing input(s): " + ", ".join(missing))
    sha = env("SHIPWATCH_SHA") or env("GITHUB_SHA")
    body = {
        "project": env("SHIPWATCH_PROJECT"),
        "environment": env("SHIPWATCH_ENVIRONMENT"),
        "sha": sha,
        "version": env("SHIPWATCH_VERSION") or None,
        "previous_sha": env("SHIPWATCH_PREVIOUS_SHA") or None,
        "deployer": env("GITHUB_ACTOR") or None,
    }
    if env("GITHUB_SERVER_URL") and env("GITHUB_REPOSITORY") and env("GITHUB_RUN_ID"):
        body["url"] = f"{env('GITHUB_SERVER_URL')}/{env('GITHUB_REPOSITORY')}/actions/runs/{env('GITHUB_RUN_ID')}"
    recorded = json.loads(call("POST", server + "/api/v1/deploys", token, body))
    deploy_id = recorded["id"]
    report_url = recorded["urls"]["report_markdown"]
    output("deploy-id", deploy_id)
    output("report-url", report_url)
    print(f"shipwatch: {'recorded' if recorded.get('created') else 'already had'} deploy {deploy_id}: {report_url}")
    if env("SHIPWATCH_WAIT", "true").lower() not in ("true", "1", "yes"):
        return
    deadline = time.monotonic() + float(env("SHIPWATCH_WAIT_TIMEOUT", "300") or 300)
    pause = 0.5
    while True:
        deploy = json.loads(call("GET", recorded["urls"]["deploy"], token))["deploy"]
        if deploy["status"] != "pending":
            break
        if time.monotonic() > deadline:
            problem = deploy.get("failure_reason") or "still pending"
            raise Failure(f"the commit range was not ready in time ({problem})")
        time.sleep(pause)
        pause = min(pause * 2, 5)
    if deploy["status"] == "failed":
        raise Failure("the deploy failed: " + (deploy.get("failure_reason") or "no reason given"))
    output("commit-count", deploy.get("commit_count") or 0)
    report = call("GET", report_url, token)
    page = recorded["urls"].get("page")
    link = f"\n[This release in shipwatch]({page}): errors and their owners as they arrive.\n" if page else ""
    append("GITHUB_STEP_SUMMARY", report + "\n" + link)
    print(f"shipwatch: range {deploy.get('range_status')}, {deploy.get('commit_count') or 0} commit(s); report in the job summary")


def main():
    fail = env("SHIPWATCH_FAIL_ON_ERROR", "false").lower() in ("true", "1", "yes")
    try:
        run()
    except Failure as e:
        level = "error" if fail else "warning"
        print(f"::{level} title=shipwatch::{e}")
        # The job summary says it too, so a reader of the run sees why there is no report.
        try:
            append("GITHUB_STEP_SUMMARY", f"### shipwatch: no release report\n\n{e}\n")
        except OSError:
            pass
        if not fail:
            print("shipwatch: continuing (fail-on-error is false)")
        return 1 if fail else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
