"""The `previz` command. Subcommands import their stage lazily so `validate` and `plan` stay light
(no torch, no ray) and run in well under a second."""

from __future__ import annotations

import argparse
import json
import sys

from previz import __version__
from previz.errors import EXIT_FAILURE, EXIT_INVALID, EXIT_OK, InvalidInput, PrevizError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="previz",
        description="Render a film's pre-visualisation from a storyboard.",
    )
    parser.add_argument("--version", action="version", version=f"previz {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser("validate", help="check storyboards; report every problem")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="storyboard files or folders")
    validate.set_defaults(run=_validate)

    plan = commands.add_parser("plan", help="show what a storyboard would render")
    plan.add_argument("storyboard", metavar="STORYBOARD")
    plan.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    plan.add_argument("--gpus", type=int, default=None, metavar="N",
                      help="forecast the render's wall time for N GPUs (default 1); CPU work "
                           "is forecast for this machine's cores")
    plan.add_argument("--node-gpus", type=int, default=None, metavar="N",
                      help="the cluster's nodes have at most N GPUs: a shot's gpus: may not "
                           "ask for more, and auto widens no further")
    plan.add_argument("--address", default=None, metavar="ADDRESS",
                      help="forecast for a render on a running cluster (no Ray start here)")
    plan.set_defaults(run=_plan)

    render = commands.add_parser("render", help="render a storyboard's cut on a Ray cluster")
    render.add_argument("storyboard", metavar="STORYBOARD")
    render.add_argument("--store", default=None, metavar="URI",
                        help="where takes and cuts live: a folder or s3://bucket/prefix "
                             "(default ./renders)")
    render.add_argument("--address", default=None, metavar="ADDR",
                        help="join this Ray cluster; without it previz starts a local one")
    render.add_argument("--only", default=None, metavar="SHOTS",
                        help="render just these shots (comma separated) and what they need")
    render.add_argument("--force", action="store_true",
                        help="render the --only shots (or all) even if their takes exist")
    render.add_argument("--draft", action="store_true",
                        help="every shot as its draft animatic (same timing; CPU only, no "
                             "weights), marked draft in burn-ins, manifest and review page")
    render.add_argument("--stills", action="store_true",
                        help="one keyframe still per shot (its model, one frame), held for its "
                             "length, for review before motion; `still: approved` on a shot "
                             "makes its still the first frame of its motion pass")
    render.add_argument("--deadline", default=None, metavar="TIME",
                        help="a cut must exist by then: 07:00 (next time it is 07:00 here), "
                             "'Mon 07:00', '07:00 Europe/London' or 2026-11-22T07:00+00:00; "
                             "shots that cannot finish "
                             "in time are rendered as drafts and upgraded by the next run")
    render.add_argument("--deadline-fallback", default="draft", choices=("draft", "fewer-steps"),
                        help="what a shot that cannot finish in time gets: the draft animatic "
                             "(default), or its model at a quarter of the steps (at least 4; "
                             "a draft when even that cannot finish)")
    render.add_argument("--editorial-media", default=None, choices=("prores422", "dnxhr-hq"),
                        help="also write each shot as ProRes 422 or DNxHR HQ MOV for Avid and "
                             "Premiere (same names as the cut files' clips, .mov)")
    render.add_argument("--retakes", action="store_true",
                        help="a new take, with a new seed, of every shot reviewers marked "
                             "needs work (previz review); the old takes are kept")
    render.add_argument("--ignore-decisions", action="store_true",
                        help="render the storyboard as written: no approved takes as selects, "
                             "no review notes in the cut files")
    render.add_argument("--json", action="store_true", help="print one JSON object at the end")
    render.set_defaults(run=_render)

    submit = commands.add_parser("submit", help="render on a shared cluster as a Ray Job")
    submit.add_argument("storyboard", metavar="STORYBOARD")
    submit.add_argument("--address", required=True, metavar="URL",
                        help="the cluster's dashboard, such as http://HEAD:8265")
    submit.add_argument("--store", default=None, metavar="URI")
    submit.set_defaults(run=_submit)
    for name, helptext in (("status", "show a render job's state"),
                           ("logs", "print a render job's log"),
                           ("cancel", "stop a render job"),
                           ("list", "list previz jobs on a cluster")):
        command = commands.add_parser(name, help=helptext)
        if name in ("logs", "cancel", "status"):
            command.add_argument("job", metavar="JOB", nargs="?" if name == "status" else None)
        if name == "logs":
            command.add_argument("--follow", "-f", action="store_true")
        command.add_argument("--address", default=None, metavar="URL",
                             help="the cluster's dashboard (default: $RAY_ADDRESS)")
        command.set_defaults(run=_job_command)

    from previz.schedule.cli import add_jobs_parser
    from previz.store.cli import add_ledger_arguments, run_ledger_command

    add_jobs_parser(commands)

    ledger = commands.add_parser("ledger", help="summarise the record of every render attempt")
    add_ledger_arguments(ledger)
    ledger.set_defaults(run=run_ledger_command)

    decisions = commands.add_parser(
        "decisions", help="list the reviewers' decisions (dailies) kept in a store")
    decisions.add_argument("store", metavar="STORE", nargs="?", default=None,
                           help="a folder or s3://bucket/prefix (default ./renders)")
    decisions.add_argument("--project", default=None, help="only this project")
    decisions.add_argument("--sequence", default=None, help="only this sequence")
    decisions.add_argument("--json", action="store_true", help="one JSON object per decision")
    decisions.set_defaults(run=_decisions)

    review = commands.add_parser(
        "review", help="dailies in the browser: compare takes, pick, approve, note at frames")
    review.add_argument("store", metavar="STORE", nargs="?", default=None,
                        help="a folder or s3://bucket/prefix (default ./renders)")
    review.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only; "
                             "any other needs --tokens)")
    review.add_argument("--sequence", default=None, metavar="PROJECT/SEQUENCE",
                        help="serve this sequence only, opening on its latest version (and "
                             "without listing the store)")
    review.add_argument("--port", type=int, default=8300)
    review.add_argument("--tokens", default=None, metavar="FILE",
                        help="reviewers' tokens, one `name: token` line each (default "
                             "$PREVIZ_REVIEW_TOKENS): who made a decision comes from the token")
    review.set_defaults(run=_review)

    verify = commands.add_parser(
        "verify", help="check the content credentials (C2PA) of takes, cuts and other media")
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument("--trust", default=None, metavar="PEM",
                        help="the CA certificates to trust (PEM; default $PREVIZ_C2PA_TRUST); "
                             "without them a signature is checked, its signer is not")
    verify.add_argument("--json", action="store_true", help="one JSON object per file")
    verify.set_defaults(run=_verify)

    doctor = commands.add_parser(
        "doctor", help="check this machine, the cluster and the store before rendering")
    doctor.add_argument("storyboards", nargs="*", metavar="STORYBOARD",
                        help="check the weights these storyboards' models load (default: "
                             "look for every catalog model's)")
    doctor.add_argument("--address", default=None, metavar="ADDR",
                        help="the cluster: its GCS address (HEAD:6379) to join it from here, or "
                             "its dashboard (http://HEAD:8265) to run the checks there as a Ray "
                             "Job; without it, the Ray a render would start on this machine")
    doctor.add_argument("--store", default=None, metavar="URI",
                        help="the store renders will use (default ./renders)")
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    doctor.add_argument("--needs-json", default=None, help=argparse.SUPPRESS)  # the job route
    doctor.set_defaults(run=_doctor)

    schema = commands.add_parser("schema", help="print the storyboard JSON Schema")
    schema.set_defaults(run=_schema)

    models = commands.add_parser("models", help="list the model catalog")
    models.add_argument("--json", action="store_true")
    models.set_defaults(run=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except InvalidInput as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID
    except PrevizError as error:
        print(f"previz: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("previz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE


def _validate(args: argparse.Namespace) -> int:
    from previz.plan import plan_from_storyboard
    from previz.plan.report import format_duration, format_plan_estimate
    from previz.storyboard import load_storyboard
    from previz.storyboard.yaml_source import yaml_files

    files = yaml_files(args.paths)
    if not files:
        raise InvalidInput(f"{', '.join(args.paths)}: no storyboard (.yaml) files found")
    failed = crashed = 0
    for path in files:
        try:
            plan = plan_from_storyboard(load_storyboard(path))
        except InvalidInput as error:
            failed += 1
            print(error, file=sys.stderr)
            continue
        except PrevizError as error:
            failed += 1
            print(f"{path}:1:1: {error}", file=sys.stderr)
            continue
        except Exception as error:  # noqa: BLE001 - a bug must not stop the files after it
            crashed += 1
            print(f"{path}:1:1: could not be checked ({type(error).__name__}: {error}) — this "
                  "is a bug in previz; please report it with the file", file=sys.stderr)
            continue
        print(f"ok  {path}  {len(plan.shots)} shots, {format_duration(plan.frames, plan.fps_fraction)} "
              f"at {plan.fps} fps, {len(plan.tasks())} tasks, "
              f"est. {format_plan_estimate(plan)}")
        for warning in plan.warnings:
            print(f"    note: {warning}")
    if failed or crashed:
        print(f"{failed + crashed} of {len(files)} storyboard(s) invalid"
              + (f" ({crashed} could not be checked)" if crashed else ""), file=sys.stderr)
        return EXIT_FAILURE if crashed else EXIT_INVALID
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from previz.plan import plan_from_storyboard
    from previz.storyboard import load_storyboard

    if args.gpus is not None and args.gpus < 1:
        raise InvalidInput(f"--gpus {args.gpus}: a render needs at least one GPU — pass 1 or "
                           "more")
    if args.node_gpus is not None and args.node_gpus < 1:
        raise InvalidInput(f"--node-gpus {args.node_gpus}: a node with GPUs has at least one — "
                           "pass 1 or more")
    plan = plan_from_storyboard(load_storyboard(args.storyboard), node_gpus=args.node_gpus)
    if args.json:
        print(plan.model_dump_json(indent=2))
        return EXIT_OK
    from previz.plan.forecast import forecast
    from previz.plan.report import print_plan

    print_plan(plan, forecast(plan, gpus=args.gpus, embedded=not args.address))
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    import signal

    from previz.render import render_storyboard

    # `previz cancel`, `kill`, Kubernetes and systemd stop a render with SIGTERM: stop it as
    # cleanly as Ctrl-C (running shots cancelled, finished takes kept, webhooks told).
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if args.deadline_fallback != "draft" and not args.deadline:
        raise InvalidInput(f"--deadline-fallback {args.deadline_fallback}: only with --deadline "
                           "— add --deadline 07:00, or drop it")
    if args.draft and args.deadline:
        raise InvalidInput("--draft with --deadline: a draft render has nothing to put off — "
                           "drop one of them")
    if args.stills and (args.draft or args.deadline):
        raise InvalidInput(f"--stills with {'--draft' if args.draft else '--deadline'}: a "
                           "render of stills is neither — drop one of them")
    deadline = _deadline_moment(args.deadline) if args.deadline else None
    return render_storyboard(args.storyboard, store=args.store, address=args.address, only=only,
                             force=args.force, draft=args.draft, stills=args.stills,
                             as_json=args.json,
                             deadline=deadline,
                             deadline_fallback=args.deadline_fallback,
                             editorial_media=args.editorial_media, retakes=args.retakes,
                             ignore_decisions=args.ignore_decisions, started=_program_start())


def _program_start() -> float | None:
    """When this process began (epoch seconds): a render's time counts its start-up too."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - without it the render counts from its own start
        return None


def _deadline_moment(text: str) -> float:
    """--deadline as epoch seconds: a local time (as a job's deadline is written: "07:00",
    "Mon 07:00"; the next time it comes round), in this machine's zone or the one named after
    it ("07:00 Europe/London", as a scheduled job's export passes it), or an ISO 8601 time with
    its offset."""
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from previz.schedule.spec import parse_deadline

    now = datetime.now().astimezone()
    when, _, zone = text.strip().rpartition(" ")
    if when and ("/" in zone or zone == "UTC"):
        try:
            now, text = datetime.now(ZoneInfo(zone)), when
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"--deadline: {zone!r} is not a time zone — write one such as "
                               "Europe/London or America/Los_Angeles") from None
    try:
        return parse_deadline(text).after(now, now.tzinfo).timestamp()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(f"--deadline: {text!r} is not a time — write 07:00 (local) or "
                           "2026-11-22T07:00+00:00 (with its offset)")
    return moment.timestamp()


def _submit(args: argparse.Namespace) -> int:
    from previz.engine.jobs import submit_storyboard

    job = submit_storyboard(args.storyboard, args.address, args.store)
    verb = "already submitted" if job["existing"] else "submitted"
    print(f"{verb}: {job['id']} ({job['status']})")
    if not job["existing"] and "://" not in job["store"]:
        print(f"store: {job['store']} — a local path: every node of the cluster must see it "
              "(a shared file system); use s3://bucket/prefix otherwise")
    print(f"follow it with: previz logs {job['id']} --follow --address {args.address}")
    return EXIT_OK


def _job_command(args: argparse.Namespace) -> int:
    import os

    from previz.engine import jobs

    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise InvalidInput("--address: no cluster named — pass --address http://HEAD:8265 "
                           "or set RAY_ADDRESS")
    if args.command == "list" or (args.command == "status" and not args.job):
        for job in jobs.list_jobs(address):
            print(f"{job['id']}  {job['status']:<10} {job['project']} {job['sequence']}")
    elif args.command == "status":
        job = jobs.job_status(address, args.job)
        print(f"{job['id']}  {job['status']}  {job['message']}")
    elif args.command == "logs":
        jobs.print_logs(address, args.job, follow=args.follow)
    elif args.command == "cancel":
        stopped = jobs.cancel_job(address, args.job)
        print(f"{args.job}: {'stopping' if stopped else 'already finished'}")
    return EXIT_OK


def _decisions(args: argparse.Namespace) -> int:
    from previz.dailies.decisions import read_decisions, reviewed_sequences, shot_reviews
    from previz.store import open_store

    store = open_store(args.store)
    sequences = [(p, s) for p, s in reviewed_sequences(store)
                 if args.project in (None, p) and args.sequence in (None, s)]
    for project, sequence in sequences:
        decisions = read_decisions(store, project, sequence)
        if args.json:
            for decision in decisions:
                print(decision.model_dump_json())
            continue
        print(f"{project} {sequence}: {len(decisions)} decision(s)")
        for decision in decisions:
            where = f" at {decision.timecode} (frame {decision.frame})" if (
                decision.frame is not None) else ""
            take = f" take {decision.take}" if decision.take else ""
            note = f": {decision.note}" if decision.note else ""
            print(f"  {decision.at:%Y-%m-%d %H:%M} {decision.reviewer:<12} {decision.version} "
                  f"{decision.shot} {decision.action.value}{take}{where}{note}")
        standing = ", ".join(f"{shot} {review.status}" + (f" (take {review.take})"
                                                          if review.take else "")
                             for shot, review in shot_reviews(decisions).items()
                             if review.status)
        if standing:
            print(f"  now: {standing}")
    if not sequences and not args.json:
        print(f"{store.uri}: no decisions yet — `previz review` is where they are made")
    return EXIT_OK


def _review(args: argparse.Namespace) -> int:
    from previz.dailies.server import ReviewSettings, load_tokens, serve
    from previz.store.registry import DEFAULT_STORE

    if not 0 < args.port < 65536:
        raise InvalidInput(f"--port {args.port}: not a port — give 1 to 65535")
    sequence = None
    if args.sequence:
        from previz.store.keys import ID_PATTERN

        project, _, name = args.sequence.partition("/")
        if not (ID_PATTERN.fullmatch(project) and ID_PATTERN.fullmatch(name)):
            raise InvalidInput(f"--sequence {args.sequence}: write PROJECT/SEQUENCE, as the "
                               "store names them (LIGHTHOUSE/SQ010)")
        sequence = (project, name)
    serve(ReviewSettings(store_uri=args.store or DEFAULT_STORE, host=args.host, port=args.port,
                         tokens=load_tokens(args.tokens), sequence=sequence))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from previz.media.credentials import ENV_TRUST, describe, json_of, verify_file

    trust_path = args.trust or os.environ.get(ENV_TRUST)
    trust = None
    if trust_path:
        source = "--trust" if args.trust else ENV_TRUST
        try:
            trust = Path(trust_path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(f"{source} {trust_path}: cannot be read ({error}) — give the CA "
                               "certificates to trust as a PEM file") from None
        if "-----BEGIN CERTIFICATE-----" not in trust:
            raise InvalidInput(f"{source} {trust_path}: holds no PEM certificate — give the CA "
                               "certificates to trust as a PEM file")
    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise InvalidInput(f"{', '.join(missing)}: no such file")
    results = [verify_file(Path(f), trust) for f in args.files]
    for result in results:
        print(json_of(result) if args.json else describe(result))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


def _doctor(args: argparse.Namespace) -> int:
    from previz.doctor import checks_json, format_checks, needs_from_json, run_doctor

    needs = needs_from_json(args.needs_json) if args.needs_json else None
    checks = run_doctor(args.storyboards, address=args.address, store_uri=args.store,
                        needs=needs)
    print(checks_json(checks) if args.json else "\n".join(format_checks(checks)), flush=True)
    return EXIT_FAILURE if any(c.status.is_failure for c in checks) else EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from previz.storyboard.schema import storyboard_json_schema

    print(json.dumps(storyboard_json_schema(), indent=2))
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from previz.catalog import CARD_SIZES_GB, CATALOG, FAMILIES

    def smallest_gang(spec, card: int) -> int | None:
        return next((n for n in spec.gang_sizes() if spec.memory_gb(n) <= card), None)

    if args.json:
        rows = {name: {"family": s.family, "pipeline": s.pipeline, "repo": s.repo,
                       "abilities": sorted(a.value for a in s.abilities), "fps": s.fps,
                       "frames": s.frames.describe(), "size_multiple": s.size_multiple,
                       "default_size": s.default_size, "gpus": s.gpus,
                       "gpu_memory_gb": s.gpu_memory_gb,
                       "cost_per_frame_step": s.cost_per_frame_step,
                       "load_seconds": s.load_seconds, "default_steps": s.default_steps,
                       "makes_sound": s.makes_sound,
                       "gang_sizes": list(s.gang_sizes()),
                       "gpu_memory_gb_by_gang": {n: round(s.memory_gb(n), 1)
                                                 for n in s.gang_sizes()},
                       "smallest_gang_by_card_gb": {card: smallest_gang(s, card)
                                                    for card in CARD_SIZES_GB},
                       "default_guidance": s.default_guidance} for name, s in CATALOG.items()}
        print(json.dumps({"models": rows, "families": FAMILIES}, indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    # fps: the rate it generates at; s/frame-step: the cost rate estimates use (GPU-seconds per
    # frame per step at its default size on one GPU; CPU-seconds for the draft). GPUs: the gang
    # sizes a shot of it may run on (gpus:), with the GB each GPU needs; fits: how many GPUs of
    # each card size hold it, up to the card that holds it alone.
    table = Table("model", "family", "pipeline", "conditioned on", "sound", "fps", "frames",
                  "size", "GPUs: GB each", "fits", "s/frame-step", "steps")
    for spec in CATALOG.values():
        size = "x".join(map(str, spec.default_size)) if spec.default_size else "cut size"
        if spec.needs_gpu:
            gpus = " · ".join(f"{n}: {spec.memory_gb(n):.0f}" for n in spec.gang_sizes())
            fits = []  # each card size up to the first that holds it alone
            for card in CARD_SIZES_GB:
                if (n := smallest_gang(spec, card)) is not None:
                    fits.append(f"{card} GB x{n}")
                    if n == 1:
                        break
            fits = ", ".join(fits) or "no card listed"
        else:
            gpus, fits = "0 (CPU)", ""
        table.add_row(spec.name, spec.family, spec.pipeline or spec.generator,
                      ", ".join(sorted(a.value for a in spec.abilities)),
                      "yes" if spec.makes_sound else "",
                      f"{spec.fps:g}" if spec.fps else "cut fps", spec.frames.describe(), size,
                      gpus, fits, f"{spec.cost_per_frame_step:.3g}", str(spec.default_steps))
    Console().print(table)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
