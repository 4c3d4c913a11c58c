#!/usr/bin/env python3
"""The installed library: `make install DESTDIR=...` puts libpop3d (shared
and static), pop3d.h and pop3d.pc in place, and the example program builds
against them with pkg-config alone and serves Python's poplib."""
import os
import poplib
import shutil
import subprocess
import tempfile
import unittest

from harness import POP3D, SANITIZED, WAIT, main

BUILD = os.path.dirname(POP3D)
SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRCDIR = os.path.dirname(SRCDIR)


class Install(unittest.TestCase):
    def test_install_and_build_example(self):
        if SANITIZED:
            self.skipTest("sanitizer build: the installed library needs the sanitizer runtime")
        if shutil.which("cc") is None or shutil.which("pkg-config") is None:
            self.skipTest("cc or pkg-config missing")
        tmp = tempfile.mkdtemp(prefix="pop3d-install-")
        self.addCleanup(shutil.rmtree, tmp, True)
        dest = os.path.join(tmp, "root")
        env = dict(os.environ)
        env.pop("MAKEFLAGS", None)
        env.pop("MFLAGS", None)
        r = subprocess.run(["make", "-C", BUILD, "install", "DESTDIR=" + dest],
                           capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        found = {}
        for root, dirs, files in os.walk(dest):
            for f in files:
                found[f] = os.path.join(root, f)
        for name in ("pop3d.h", "pop3d.pc", "libpop3d.a", "pop3d", "pop3ctl",
                     "authlimit.so", "eventlog.so", "pop3d.8", "pop3d-control.7",
                     "pop3ctl.1", "libpop3d.3"):
            self.assertIn(name, found)
        self.assertTrue(any(f.startswith("libpop3d.so") for f in found))
        pcdir = os.path.dirname(found["pop3d.pc"])
        env["PKG_CONFIG_PATH"] = pcdir
        env["PKG_CONFIG_SYSROOT_DIR"] = dest
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "pop3d", "libevent_core"],
                               capture_output=True, text=True, env=env, check=True).stdout.split()
        exe = os.path.join(tmp, "tinypop3")
        src = os.path.join(SRCDIR, "docs", "examples", "tinypop3.c")
        r = subprocess.run(["cc", "-o", exe, src] + flags, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        libdir = os.path.dirname(found["libpop3d.a"])
        proc = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, LD_LIBRARY_PATH=libdir))
        try:
            port = int(proc.stdout.readline().split()[-1])
            p = poplib.POP3("127.0.0.1", port, timeout=WAIT)
            p.user("demo")
            p.pass_("demo")
            self.assertEqual(p.stat()[0], 2)
            p.quit()
            ldd = subprocess.run(["ldd", exe], capture_output=True, text=True,
                                 env=dict(os.environ, LD_LIBRARY_PATH=libdir)).stdout
            self.assertIn(libdir, ldd)  # linked against the installed shared library
        finally:
            proc.terminate()
            proc.wait(WAIT)


if __name__ == "__main__":
    main()
