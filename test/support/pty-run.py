"""Runs a command on a pseudo-terminal and plays a script of keystrokes into it.

usage: python3 pty-run.py '<steps JSON>' command [args...]
steps: [{"expect": "text", "send": "keys"}, ...]; each waits until `expect` appears in the
terminal's output after the previous match, then types `send`. Prints one JSON line:
{"status": exit code or -signal, "output": everything the terminal showed,
 "echo": whether the terminal's ECHO flag was on after the command ended,
 "timedOut": true when a step or the command took longer than the timeout}.
The child gets the pty as stdin, stdout and stderr, like a program run in a terminal.
"""
import json
import os
import pty
import select
import signal
import sys
import termios
import time

TIMEOUT_S = float(os.environ.get("PTY_RUN_TIMEOUT_S", "30"))


def main() -> None:
    steps = json.loads(sys.argv[1])
    command = sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)

    output = b""
    matched = 0
    deadline = time.monotonic() + TIMEOUT_S
    timed_out = False
    ended = False

    def read_some(wait: float) -> None:
        nonlocal output, ended
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed its side
            data = b""
        if data:
            output += data
        else:
            ended = True

    for step in steps:
        expected = step["expect"].encode()
        while output.find(expected, matched) < 0 and not ended:
            if time.monotonic() > deadline:
                timed_out = True
                break
            read_some(0.1)
        found = output.find(expected, matched)
        if found < 0:
            break
        matched = found + len(expected)
        os.write(fd, step["send"].encode())

    # The terminal settings as the command left them, read while it may still be running.
    while not ended and not timed_out:
        if time.monotonic() > deadline:
            timed_out = True
            break
        read_some(0.1)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    try:
        echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        echo = None
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"status": code, "output": output.decode("utf-8", "replace"),
                      "echo": echo, "timedOut": timed_out}))


main()
