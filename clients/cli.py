"""The `zynk` client subcommands (mesh/cli.py adds them beside `zynk up`).

    zynk register alice            zynk send bob "hi"           zynk chat bob
    zynk login alice               zynk listen [--once]         zynk safety-number bob
    zynk devices [list|rename|revoke]   zynk groups create|list|members|invite|join|add|remove|
    zynk whoami  zynk logout            leave|send

Secrets come from prompts (getpass) or, for scripts, ZYNK_PASSWORD (the account password)
and ZYNK_PASSPHRASE (the local profile passphrase). The server is --server, ZYNK_SERVER or
http://127.0.0.1:8080; profiles live in --home / ZYNK_HOME (default ~/.zynk), one directory
per --profile (default "default"). Expected failures print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import os
import pathlib
import sys
import threading
from collections.abc import Mapping
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8080"
CLIENT_COMMANDS = ("register", "login", "logout", "whoami", "devices", "send", "edit", "react",
                   "delete", "chat", "listen", "groups", "safety-number")


def add_common_options(p: argparse.ArgumentParser, top: bool = False) -> None:
    # Accepted before or after the subcommand; the subcommand's value wins.
    default = None if top else argparse.SUPPRESS
    p.add_argument("--server", default=default,
                   help="server URL (ZYNK_SERVER, default http://127.0.0.1:8080)")
    p.add_argument("--home", type=pathlib.Path, default=default,
                   help="where profiles live (ZYNK_HOME, default ~/.zynk)")
    p.add_argument("--profile", default=default,
                   help="profile name: one per account/device (default 'default')")


def add_commands(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common)

    def cmd(name: str, help_: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, parents=[common], **kw)

    p = cmd("register", "create an account (and log this device in)")
    p.add_argument("username")
    p.add_argument("--display-name", default="")
    p.add_argument("--device-name", default="zynk cli")
    p.add_argument("--no-login", action="store_true", help="only create the account")
    p.add_argument("--kdf-memory-mib", type=int, default=64,
                   help="argon2id memory for the profile passphrase (8-4096, default 64)")

    p = cmd("login", "log in: this profile becomes a new device of the account")
    p.add_argument("username")
    p.add_argument("--device-name", default="zynk cli")
    p.add_argument("--kdf-memory-mib", type=int, default=64,
                   help="argon2id memory for the profile passphrase (8-4096, default 64)")

    p = cmd("logout", "end this device's session and delete the profile's keys")
    p.add_argument("--local", action="store_true",
                   help="only delete the local profile (when the server is unreachable)")

    cmd("whoami", "show the account, device and key status")

    p = cmd("devices", "list, rename or revoke your devices")
    dsub = p.add_subparsers(dest="devices_command")
    d = dsub.add_parser("list", help="list your devices", parents=[common])
    d.add_argument("--all", action="store_true", help="include revoked devices")
    d = dsub.add_parser("rename", help="rename a device", parents=[common])
    d.add_argument("device", help="device id (or unique prefix, or its name)")
    d.add_argument("name")
    d = dsub.add_parser("revoke", help="revoke a device", parents=[common])
    d.add_argument("device")

    p = cmd("send", "send a message to a user (bob) or a group (#name, groups/ID)")
    p.add_argument("target")
    p.add_argument("text", nargs="+")

    p = cmd("edit", "edit one of your messages")
    p.add_argument("target")
    p.add_argument("message_id", help="message id (or a unique prefix from `zynk listen`)")
    p.add_argument("text", nargs="+")

    p = cmd("react", "react to a message with an emoji")
    p.add_argument("target")
    p.add_argument("message_id")
    p.add_argument("emoji")
    p.add_argument("--remove", action="store_true")

    p = cmd("delete", "delete one of your messages for everyone")
    p.add_argument("target")
    p.add_argument("message_id")

    p = cmd("chat", "interactive chat: incoming messages appear, lines you type are sent")
    p.add_argument("target")
    p.add_argument("--rest", action="store_true", help="receive over REST, not the WebSocket")

    p = cmd("listen", "print incoming messages")
    p.add_argument("--once", action="store_true", help="catch up, then exit")
    p.add_argument("--rest", action="store_true", help="receive over REST, not the WebSocket")

    p = cmd("groups", "groups: create, list, members, invite, join, add, remove, leave, send")
    gsub = p.add_subparsers(dest="groups_command", required=True)
    g = gsub.add_parser("create", help="create a group", parents=[common])
    g.add_argument("name")
    g.add_argument("members", nargs="*", help="usernames to add")
    gsub.add_parser("list", help="your groups", parents=[common])
    g = gsub.add_parser("members", help="a group's members", parents=[common])
    g.add_argument("group")
    g = gsub.add_parser("invite", help="create an invite token", parents=[common])
    g.add_argument("group")
    g.add_argument("--max-uses", type=int, default=0)
    g = gsub.add_parser("join", help="join a group with an invite token", parents=[common])
    g.add_argument("token")
    g = gsub.add_parser("add", help="add members", parents=[common])
    g.add_argument("group")
    g.add_argument("usernames", nargs="+")
    g = gsub.add_parser("remove", help="remove members", parents=[common])
    g.add_argument("group")
    g.add_argument("usernames", nargs="+")
    g = gsub.add_parser("leave", help="leave a group", parents=[common])
    g.add_argument("group")
    g = gsub.add_parser("send", help="send to a group", parents=[common])
    g.add_argument("group")
    g.add_argument("text", nargs="+")

    p = cmd("safety-number", "the number to compare with someone to verify their keys")
    p.add_argument("username")


# -- settings and secrets ---------------------------------------------------------------------


class Ctx:
    def __init__(self, args: argparse.Namespace, env: Mapping[str, str]) -> None:
        self.args = args
        self.env = env
        self.explicit_server = getattr(args, "server", None) or env.get("ZYNK_SERVER") or None
        self.server = self.explicit_server or DEFAULT_SERVER
        home = getattr(args, "home", None) or env.get("ZYNK_HOME")
        self.home = pathlib.Path(home).expanduser() if home else pathlib.Path.home() / ".zynk"
        self.profile = getattr(args, "profile", None) or env.get("ZYNK_PROFILE") or "default"

    def secret(self, var: str, prompt: str, confirm: bool = False) -> str:
        value = self.env.get(var)
        if value:
            return value
        if not sys.stdin.isatty():
            from clients.sdk.errors import ProfileError

            raise ProfileError(f"no terminal to ask for the {prompt.lower().rstrip(': ')}; "
                               f"set {var}")
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != value:
            from clients.sdk.errors import ProfileError

            raise ProfileError("the two entries differ")
        return value

    def passphrase(self, new: bool = False) -> str:
        return self.secret("ZYNK_PASSPHRASE", "Profile passphrase: ", confirm=new)

    def password(self, new: bool = False) -> str:
        return self.secret("ZYNK_PASSWORD", "Account password: ", confirm=new)

    async def open(self):
        from clients.sdk.client import ZynkClient

        return await ZynkClient.open(self.home, self.profile, self.passphrase(),
                                     self.explicit_server)


def _kdf(mib: int):
    from clients.sdk.errors import InvalidArgument
    from clients.sdk.store import KdfParams

    if not 8 <= mib <= 4096:
        raise InvalidArgument("--kdf-memory-mib must be between 8 and 4096")
    return KdfParams(memory_kib=mib * 1024)


# -- output ---------------------------------------------------------------------------------


def _clock(t: float) -> str:
    if not t:
        return "--:--"
    return datetime.datetime.fromtimestamp(t).strftime("%H:%M")


def format_event(ev: Any, here: str = "") -> str | None:
    """One line per event; `here` (a conversation) drops the title for the current chat."""
    title = "" if ev.conversation == here and here else f"{ev.title} "
    if ev.kind in ("message", "edit", "reaction", "delete"):
        who = "me" if ev.outgoing else ev.sender
        mark = {"message": "", "edit": "(edited) ", "reaction": "", "delete": ""}[ev.kind]
        return f"[{_clock(ev.time)}] {title}{who}: {mark}{ev.text}  ({ev.message_id})"
    if ev.kind in ("system", "info", "receipt"):
        return f"[{_clock(ev.time)}] {title}* {ev.text}"
    if ev.kind == "error":
        return f"[{_clock(ev.time)}] {title}! {ev.text}"
    return None


def _out(text: str) -> None:
    print(text, flush=True)


# -- commands -------------------------------------------------------------------------------


async def _register(ctx: Ctx) -> int:
    from clients.sdk.client import ZynkClient

    a = ctx.args
    kdf = _kdf(a.kdf_memory_mib)
    password = ctx.password(new=True)
    passphrase = "" if a.no_login else ctx.passphrase(new=True)
    user = await ZynkClient.register(ctx.server, a.username, password, a.display_name)
    _out(f"registered {user.username} ({user.name})")
    if a.no_login:
        return 0
    client = await ZynkClient.login(ctx.home, ctx.profile, passphrase, ctx.server,
                                    a.username, password, a.device_name, kdf)
    async with client:
        _out(f"logged in as {client.state.username} on device {client.device}")
    return 0


async def _login(ctx: Ctx) -> int:
    from clients.sdk.client import ZynkClient

    a = ctx.args
    kdf = _kdf(a.kdf_memory_mib)
    password = ctx.password()
    client = await ZynkClient.login(ctx.home, ctx.profile, ctx.passphrase(new=True), ctx.server,
                                    a.username, password, a.device_name, kdf)
    async with client:
        _out(f"logged in as {client.state.username} on device {client.device}")
    return 0


async def _logout(ctx: Ctx) -> int:
    client = await ctx.open()
    async with client:
        if ctx.args.local:
            client.forget_locally()
        else:
            await client.logout()
    _out("logged out; this profile's keys are deleted")
    return 0


async def _whoami(ctx: Ctx) -> int:
    from clients.sdk import errors as E

    async with await ctx.open() as client:
        s = client.state
        _out(f"{s.username} ({s.user})\ndevice {s.device_display_name!r} ({s.device})\n"
             f"server {s.server}")
        try:
            info = await client.whoami()
        except E.ZynkError as err:
            _out(f"(key status unavailable: {err})")
            return 0
        _out(f"identity fingerprint {info['identity_fingerprint']}\n"
             f"one-time prekeys on the server: {info['one_time_prekeys']}, "
             f"signed prekey #{info['signed_prekey_id']}")
        if s.outbox:
            _out(f"{len(s.outbox)} message(s) waiting to be sent")
    return 0


async def _devices(ctx: Ctx) -> int:
    a = ctx.args
    async with await ctx.open() as client:
        sub = a.devices_command or "list"
        if sub == "rename":
            d = await client.rename_device(a.device, a.name)
            _out(f"renamed {d.name} to {d.display_name!r}")
            return 0
        if sub == "revoke":
            d = await client.revoke_device(a.device)
            own = " (this device: the profile is logged out)" if d.name == client.device else ""
            _out(f"revoked {d.name}{own}")
            return 0
        for d in await client.devices(show_revoked=getattr(a, "all", False)):
            mark = "*" if d.name == client.device else " "
            state = "revoked" if d.HasField("revoke_time") else (
                "keys" if d.has_keys else "no keys")
            seen = _clock(d.last_seen_time.seconds) if d.HasField("last_seen_time") else ""
            _out(f"{mark} {d.name.rsplit('/', 1)[-1]}  {d.display_name or '-':20}  "
                 f"{state:8} last seen {seen}")
    return 0


async def _queued_note(client, err) -> None:
    from clients.sdk import errors as E

    if isinstance(err, E.TRANSIENT) and client.state.outbox:
        print("zynk: the message is queued and will be sent by the next zynk command",
              file=sys.stderr)


async def _send(ctx: Ctx, target: str, text: str) -> int:
    from clients.sdk import errors as E

    async with await ctx.open() as client:
        try:
            message_id = await client.send_text(target, text)
        except E.ZynkError as err:
            await _queued_note(client, err)
            raise
        _report_dropped(client)
        _out(f"sent ({message_id})")
    return 0


def _report_dropped(client) -> None:
    for entry, err in client.dropped:
        print(f"zynk: an earlier message ({entry.message_id}) could not be sent and was "
              f"dropped: {err}", file=sys.stderr)
    client.dropped.clear()


def _resolve_id(client, conversation: str, ref: str) -> str:
    from clients.sdk import errors as E

    prefix = f"{conversation}/messages/"
    found = {h["name"][len(prefix):] for h in client.state.history
             if h["name"].startswith(prefix + ref)}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        raise E.InvalidArgument(f"{ref!r} matches several messages; give more of the id")
    return ref


async def _edit_like(ctx: Ctx) -> int:
    from clients.sdk import plaintext as pt

    a = ctx.args
    async with await ctx.open() as client:
        conv = await client.resolve(a.target)
        target = _resolve_id(client, conv.name, a.message_id)
        if a.command == "edit":
            sent = await client.send(conv, pt.Edit(target, " ".join(a.text)))
        elif a.command == "react":
            sent = await client.send(conv, pt.Reaction(target, a.emoji, a.remove))
        else:
            sent = await client.delete_for_everyone(conv.name, target)
        _report_dropped(client)
        _out(f"sent ({sent})")
    return 0


async def _listen(ctx: Ctx) -> int:
    a = ctx.args
    async with await ctx.open() as client:
        async def show(events):
            for ev in events:
                line = format_event(ev)
                if line:
                    _out(line)

        def status(s: str) -> None:
            if s == "reconnecting":
                print("zynk: connection lost; reconnecting...", file=sys.stderr, flush=True)

        await client.listen(show, follow=not a.once, mode="rest" if a.rest else "auto",
                            on_status=status)
    return 0


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines typed, read by a daemon thread (a blocked read never holds up exit)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="zynk-stdin", daemon=True).start()
    return queue


async def _chat(ctx: Ctx) -> int:
    from clients.sdk import errors as E
    from clients.sdk import plaintext as pt

    a = ctx.args
    async with await ctx.open() as client:
        conv = await client.resolve(a.target)
        await client.save()
        _out(f"chat with {conv.title}: type a message and press Enter; /quit to leave")
        for h in [h for h in client.state.history if h["conversation"] == conv.name][-20:]:
            who = "me" if h["sender"] == client.user else await client.username(h["sender"])
            text = "(deleted)" if h["deleted"] else h["text"]
            _out(f"[{_clock(h['time'])}] {who}: {text}")

        async def show(events):
            last = 0
            for ev in events:
                line = format_event(ev, here=conv.name)
                if line:
                    _out(line)
                if ev.conversation == conv.name and ev.kind == "message" and not ev.outgoing:
                    last = max(last, ev.sequence)
            if last:
                try:
                    await client.mark_read(conv.name, last)
                except E.ZynkError:
                    pass

        def status(s: str) -> None:
            if s == "reconnecting":
                _out("* connection lost; reconnecting...")

        listener = asyncio.create_task(client.listen(
            show, follow=True, mode="rest" if a.rest else "auto", on_status=status))
        lines = _stdin_lines(asyncio.get_running_loop())
        try:
            while True:
                get = asyncio.create_task(lines.get())
                done, _ = await asyncio.wait({get, listener},
                                             return_when=asyncio.FIRST_COMPLETED)
                if listener in done:
                    get.cancel()
                    listener.result()  # raises what stopped it
                    return 0
                line = get.result()
                if line is None or line.strip() == "/quit":
                    return 0
                if not line.strip():
                    continue
                try:
                    await client.send(conv, pt.Text(line))
                except E.ZynkError as err:
                    _out(f"! not sent: {err}")
                    await _queued_note(client, err)
                _report_dropped(client)
        finally:
            listener.cancel()
            try:
                await listener
            except (asyncio.CancelledError, E.ZynkError):
                pass


async def _groups(ctx: Ctx) -> int:
    a = ctx.args
    sub = a.groups_command
    async with await ctx.open() as client:
        if sub == "create":
            g = await client.create_group(a.name, a.members)
            _out(f"created #{g.display_name} ({g.name}) with {g.member_count} member(s)")
        elif sub == "list":
            from zynk.group.v1 import group_pb2 as grp

            for g in await client.transport.list_groups():
                role = grp.Role.Name(g.caller_role).removeprefix("ROLE_").lower()
                _out(f"#{g.display_name}  {g.name}  {g.member_count} member(s)  you: {role}")
        elif sub == "members":
            for username, role in await client.members(a.group):
                _out(f"{username}  {role.lower()}")
        elif sub == "invite":
            invite = await client.invite(a.group, a.max_uses)
            _out(invite.token)
        elif sub == "join":
            g = await client.join(a.token)
            _out(f"joined #{g.display_name} ({g.name})")
        elif sub == "add":
            n = await client.add_members(a.group, a.usernames)
            _out(f"added {n} member(s)")
        elif sub == "remove":
            n = await client.remove_members(a.group, a.usernames)
            _out(f"removed {n} member(s)")
        elif sub == "leave":
            await client.leave(a.group)
            _out("left the group")
    if sub == "send":
        group = a.group if a.group.startswith(("groups/", "#")) else f"#{a.group}"
        return await _send(ctx, group, " ".join(a.text))
    return 0


async def _safety_number(ctx: Ctx) -> int:
    from clients.sdk.crypto.fingerprint import format_safety_number

    async with await ctx.open() as client:
        number = await client.safety_number(ctx.args.username)
        _out(f"safety number with {ctx.args.username.removeprefix('@')} (compare it with "
             f"theirs, in person or on a call):\n{format_safety_number(number)}")
    return 0


async def _dispatch(ctx: Ctx) -> int:
    c = ctx.args.command
    if c == "register":
        return await _register(ctx)
    if c == "login":
        return await _login(ctx)
    if c == "logout":
        return await _logout(ctx)
    if c == "whoami":
        return await _whoami(ctx)
    if c == "devices":
        return await _devices(ctx)
    if c == "send":
        return await _send(ctx, ctx.args.target, " ".join(ctx.args.text))
    if c in ("edit", "react", "delete"):
        return await _edit_like(ctx)
    if c == "chat":
        return await _chat(ctx)
    if c == "listen":
        return await _listen(ctx)
    if c == "groups":
        return await _groups(ctx)
    if c == "safety-number":
        return await _safety_number(ctx)
    raise AssertionError(c)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run a parsed client subcommand; -> the exit code. Expected failures are one line on
    stderr, never a traceback."""
    from clients.sdk.errors import ZynkError

    ctx = Ctx(args, os.environ if env is None else env)
    try:
        return asyncio.run(_dispatch(ctx))
    except ZynkError as err:
        print(f"zynk: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="zynk", description="Zynk end-to-end encrypted client")
    add_common_options(ap, top=True)
    add_commands(ap.add_subparsers(dest="command", required=True))
    return run(ap.parse_args(argv), env)


if __name__ == "__main__":
    sys.exit(main())
