"""A throwaway OpenLDAP server for the tests: Debian's slapd on a free port, its own config
and database in a temporary folder, loaded from an LDIF with ldapadd."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from channels.sandbox.broker import free_port

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=edu"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
CAMPUS_LDIF = Path(__file__).parent / "data" / "campus.ldif"

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {folder}/slapd.pid
sizelimit size.soft=3 size.hard=3 size.prtotal=unlimited
database mdb
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_password}
directory {folder}/data
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="{reader}" read by * none
"""

_READER = """\
dn: {reader}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: {password}
"""


def available() -> bool:
    """Whether slapd and ldapadd are installed (`make tools`)."""
    return Path(SLAPD).is_file() and Path("/usr/bin/ldapadd").is_file()


class Slapd:
    """One slapd process; `url` once started. A `sizelimit` of 3 makes every search that
    is not paged fail past three entries, as Active Directory's limit does past 1,000."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`ldap://127.0.0.1:port`."""
        return f"ldap://127.0.0.1:{self.port}"

    def start(self, ldif: Path = CAMPUS_LDIF) -> None:
        """Start the server and load the campus (and the read-only account) into it."""
        (self.folder / "data").mkdir(parents=True)
        config = self.folder / "slapd.conf"
        config.write_text(_CONFIG.format(
            folder=self.folder, suffix=SUFFIX, admin=ADMIN_DN, admin_password=ADMIN_PASSWORD,
            reader=READER_DN,
        ))
        self.port = free_port()
        # -d keeps slapd in the foreground, so the process we hold is the server itself.
        self._process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own config
            [SLAPD, "-d", "0", "-f", str(config), "-h", f"{self.url}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        reader = self.folder / "reader.ldif"
        reader.write_text(_READER.format(reader=READER_DN, password=READER_PASSWORD))
        self.ldapadd(ldif)
        self.ldapadd(reader)

    def ldapadd(self, ldif: Path) -> None:
        """Add the entries of an LDIF file as the administrator."""
        subprocess.run(  # noqa: S603 - the Debian client and our own files
            ["/usr/bin/ldapadd", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD,
             "-f", str(ldif)],
            check=True, capture_output=True,
        )

    def _wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not start listening")

    def stop(self) -> None:
        """Stop the server by its own process id."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
