#!/usr/bin/env python3
"""The shipwatch GitHub Action: tell a shipwatch server about a deploy, wait for its commit range, optionally watch
the release for a while (a deploy gate), and write the release report to the job summary. Standard library only, so
the runner needs no build or install step.

Inputs arrive as environment variables (set by action.yml from the action's inputs); results go to $GITHUB_OUTPUT
and $GITHUB_STEP_SUMMARY. A failure is a warning unless `fail-on-error` is true: a shipwatch outage must not fail a
deploy pipeline unless asked.
"""

import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request


def env(name, default=""):
    return os.environ.get(name, default).strip()


class Failure(Exception):
    pass


class Misconfigured(Failure):
    """An input the step cannot work with: the job fails whatever `fail-on-error` says (a mistyped gate must not
    silently let every release through)."""


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


def parse_fail_on(text):
    """`new`, `regression` and `error-rate>Nx`, comma-separated, into a list of conditions."""
    conditions = []
    for part in [p.strip().lower() for p in text.split(",") if p.strip()]:
        if part in ("new", "regression"):
            conditions.append((part, None))
            continue
        m = re.fullmatch(r"error-rate\s*>\s*(\d+(?:\.\d+)?)\s*x", part)
        if m:
            conditions.append(("error-rate", float(m.group(1))))
            continue
        raise Misconfigured(
            f"fail-on: `{part}` is not a condition; use new, regression or error-rate>Nx (e.g. error-rate>2x)")
    return conditions


def verdict(report, conditions):
    """What the release did against the conditions: (passed, reasons)."""
    new = len(report.get("new_errors") or [])
    regressions = len(report.get("regressions") or [])
    counts = report.get("error_counts") or {}
    before, after = counts.get("before", 0), counts.get("after", 0)
    reasons = []
    for kind, factor in conditions:
        if kind == "new" and new:
            reasons.append(f"{new} new error(s)")
        elif kind == "regression" and regressions:
            reasons.append(f"{regressions} regression(s)")
        elif kind == "error-rate":
            # Against the same window before the deploy; from a quiet baseline, at least N events.
            limit = factor * before if before else factor
            if after > limit:
                reasons.append(f"{after} events after the deploy against {before} before (more than {factor:g}x)")
    return (not reasons), reasons


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
    # Both checked before anything is recorded.
    conditions = parse_fail_on(env("SHIPWATCH_FAIL_ON"))
    try:
        wait_minutes = float(env("SHIPWATCH_WAIT_MINUTES", "0") or 0)
    except ValueError:
        raise Misconfigured(f"wait-minutes: `{env('SHIPWATCH_WAIT_MINUTES')}` is not a number of minutes")
    if wait_minutes < 0 or wait_minutes > 24 * 60:
        raise Misconfigured("wait-minutes must be between 0 and 1440")
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
        # A re-run of the job is a restart of the deploy: its own record (the same run's retried request is not).
        if (env("GITHUB_RUN_ATTEMPT") or "1") != "1":
            body["url"] += f"/attempts/{env('GITHUB_RUN_ATTEMPT')}"
    recorded = json.loads(call("POST", server + "/api/v1/deploys", token, body))
    deploy_id = recorded["id"]
    report_url = recorded["urls"]["report_markdown"]
    output("deploy-id", deploy_id)
    output("report-url", report_url)
    print(f"shipwatch: {'recorded' if recorded.get('created') else 'already had'} deploy {deploy_id}: {report_url}")
    if env("SHIPWATCH_WAIT", "true").lower() not in ("true", "1", "yes") and not wait_minutes and not conditions:
        return True
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
    # The deploy gate: watch the release for a while, so the report says what it actually did.
    if wait_minutes:
        end = time.monotonic() + wait_minutes * 60
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            print(f"shipwatch: watching the release, {left / 60:.1f} minute(s) left")
            time.sleep(min(30.0, left))
    window = max(1, math.ceil(wait_minutes)) if wait_minutes else 60
    report_json = json.loads(call("GET", f"{recorded['urls']['report']}&window_minutes={window}", token))
    passed, reasons = verdict(report_json, conditions)
    new = len(report_json.get("new_errors") or [])
    regressions = len(report_json.get("regressions") or [])
    output("new-errors", new)
    output("regressions", regressions)
    output("verdict", "pass" if passed else "fail")
    report = call("GET", f"{report_url}&window_minutes={window}", token)
    page = recorded["urls"].get("page")
    link = f"\n[This release in shipwatch]({page}): errors and their owners as they arrive.\n" if page else ""
    gate = ""
    if conditions:
        watched = f"after watching it for {wait_minutes:g} minute(s)" if wait_minutes else "right after the deploy"
        if passed:
            gate = f"\n### Deploy gate: pass\n\nNothing in `{env('SHIPWATCH_FAIL_ON')}` happened {watched}.\n"
        else:
            gate = (f"\n### Deploy gate: fail\n\n{'; '.join(reasons)} {watched} (fail-on: "
                    f"`{env('SHIPWATCH_FAIL_ON')}`). Look at the errors and their owners on the release page; roll "
                    "back, or fix forward and deploy again.\n")
    append("GITHUB_STEP_SUMMARY", report + "\n" + gate + link)
    print(f"shipwatch: range {deploy.get('range_status')}, {deploy.get('commit_count') or 0} commit(s), "
          f"{new} new error(s), {regressions} regression(s); report in the job summary")
    if not passed:
        print(f"::error title=shipwatch deploy gate::{'; '.join(reasons)}")
    return passed


def main():
    fail = env("SHIPWATCH_FAIL_ON_ERROR", "false").lower() in ("true", "1", "yes")
    try:
        passed = run()
    except Failure as e:
        fail = fail or isinstance(e, Misconfigured)
        level = "error" if fail else "warning"
        print(f"::{level} title=shipwatch::{e}")
        # The job summary says it too, so a reader of the run sees why there is no report.
        try:
            append("GITHUB_STEP_SUMMARY", f"### shipwatch: no release report\n\n{e}\n\nFix what is named above and "
                   "re-run the job: recording a deploy again is safe (the same deploy is not recorded twice).\n")
        except OSError:
            pass
        if not fail:
            print("shipwatch: continuing (fail-on-error is false)")
        return 1 if fail else 0
    # The gate's verdict fails the job whatever fail-on-error says: that input is about reaching shipwatch.
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
