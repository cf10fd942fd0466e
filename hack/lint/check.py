#!/usr/bin/env python3
"""Runs kube-score and kubeconform and compares their findings with the allowlist.

    check.py --bin DIR --schemas DIR --allowlist FILE --kubernetes-version v1.NN
             [--source FILE]... FILE...

Every FILE goes through both tools; every --source FILE (a WebCluster) through
kubeconform only. Each finding is one line

    TOOL | CHECK | SOURCE | KIND/NAME[/CONTAINER] | MESSAGE

(SOURCE is the file's name without .yaml). The allowlist holds lines with the
same five fields, each a shell-style pattern (fnmatch), and a sixth: the
reason, which must not be empty. Exit status 1 when a finding matches no
entry (new) or an entry matches no finding (stale); the counts per tool are
printed either way.
"""

import argparse
import collections
import fnmatch
import json
import os
import subprocess
import sys

FIELDS = ("tool", "check", "source", "object", "message")


def source_of(path):
    return os.path.basename(path).removesuffix(".yaml")


def kube_score(binary, files, kubernetes_version):
    """Findings: every check of every object that is neither OK nor skipped."""
    findings = []
    for path in files:
        run = subprocess.run(
            [binary, "score", "-o", "json", "--kubernetes-version", kubernetes_version,
             "--disable-ignore-checks-annotations", path],
            capture_output=True, text=True, check=False)
        # Exit 1 means findings; anything else, or no JSON, is a failure of the tool.
        if run.returncode not in (0, 1):
            sys.exit(f"kube-score failed on {path} ({run.returncode}): {run.stderr}")
        for obj in json.loads(run.stdout) or []:
            kind, name = obj["type_meta"]["kind"], obj["object_meta"]["name"]
            for check in obj["checks"]:
                if check["skipped"] or check["grade"] >= 10:
                    continue
                for comment in check["comments"] or [{"path": "", "summary": check["check"]["name"]}]:
                    where = f"{kind}/{name}" + (f"/{comment['path']}" if comment.get("path") else "")
                    findings.append(("kube-score", check["check"]["id"], source_of(path), where, comment["summary"]))
    return findings


def kubeconform(binary, schemas, files):
    """Findings: every validation error, every object without a schema, every error."""
    location = os.path.join(schemas, "{{ .ResourceKind }}_{{ .Group }}_{{ .ResourceAPIVersion }}.json")
    findings = []
    for path in files:
        run = subprocess.run(
            [binary, "-strict", "-summary", "-output", "json", "-schema-location", location, path],
            capture_output=True, text=True, check=False)
        try:
            report = json.loads(run.stdout)
        except json.JSONDecodeError:
            sys.exit(f"kubeconform failed on {path} ({run.returncode}): {run.stdout}{run.stderr}")
        for resource in report.get("resources") or []:
            status = resource["status"]
            if status == "statusValid":
                continue
            where = f"{resource.get('kind', '?')}/{resource.get('name', '?')}"
            errors = leaf_errors(resource.get("msg", "")) or [
                f"{e['path']}: {e['msg']}" for e in resource.get("validationErrors") or []]
            if status == "statusInvalid" and errors:
                for error in errors:
                    findings.append(("kubeconform", "invalid", source_of(path), where, error))
            else:
                findings.append(("kubeconform", status.removeprefix("status").lower(), source_of(path), where,
                                 resource.get("msg", "")))
        summary = report.get("summary") or {}
        if run.returncode != 0 and not findings and summary.get("errors", 0) == 0:
            sys.exit(f"kubeconform failed on {path} ({run.returncode}): {run.stderr}")
    return findings


def leaf_errors(msg):
    """`PATH: MESSAGE` of each error in kubeconform's message (its validationErrors
    name only the outermost path), without the "validation failed" of the parents."""
    errors = []
    for part in msg.split("- at '")[1:]:
        where, _, text = part.partition("': ")
        text = text.strip()
        if text != "validation failed":
            errors.append(f"{where}: {text}")
    return errors


def allowlist(path):
    """(line number, five patterns, reason) of every entry."""
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [part.strip() for part in line.split("|")]
            if len(parts) != 6 or not parts[5]:
                sys.exit(f"{path}:{number}: expected TOOL | CHECK | SOURCE | OBJECT | MESSAGE | REASON")
            entries.append((number, tuple(parts[:5]), parts[5]))
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--schemas", required=True)
    parser.add_argument("--allowlist", required=True)
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--source", action="append", default=[])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    findings = kube_score(os.path.join(args.bin, "kube-score"), args.files, args.kubernetes_version)
    findings += kubeconform(os.path.join(args.bin, "kubeconform"), args.schemas, args.files + args.source)
    entries = allowlist(args.allowlist)
    used = collections.Counter()
    new = []
    for finding in findings:
        match = next((e for e in entries if all(fnmatch.fnmatchcase(v, p) for v, p in zip(finding, e[1]))), None)
        if match is None:
            new.append(finding)
        else:
            used[match[0]] += 1

    per_tool = collections.Counter(f[0] for f in findings)
    print(f"findings: kube-score {per_tool['kube-score']}, kubeconform {per_tool['kubeconform']} "
          f"({len(findings) - len(new)} accepted by {len(used)} of {len(entries)} allowlist entries)")
    per_check = collections.Counter(f[:2] for f in findings)
    for (tool, check), count in sorted(per_check.items()):
        print(f"  {tool} {check}: {count}")
    stale = [e for e in entries if used[e[0]] == 0]
    for finding in new:
        print("NEW FINDING: " + " | ".join(finding))
    for number, patterns, reason in stale:
        print(f"STALE ALLOWLIST ENTRY (line {number}, matches nothing): {' | '.join(patterns)} | {reason}")
    if new or stale:
        print(f"{len(new)} new finding(s), {len(stale)} stale entr(y/ies): fix them, or accept a finding "
              "in hack/lint-allowlist.txt with its reason", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
