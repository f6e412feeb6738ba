"""server.properties as Kafka reads it: java.util.Properties from ISO-8859-1, so the paths in it
(the state dir's: the log dirs, the keystore, the CA) are escaped, whatever their characters."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tawasul_devstack import install
from tawasul_devstack.kafka import TlsListener, property_value, server_properties

# Arabic letters, a character outside the BMP (a UTF-16 surrogate pair), and every character
# java.util.Properties would otherwise take for a separator, a comment or an escape.
AWKWARD = "/home/محمد/😀/a b:c=d#e!f\\g"

# Prints each named property's code points (hex), whatever the JVM's locale.
READ_BACK = """\
public class ReadBack {
    public static void main(String[] args) throws Exception {
        java.util.Properties props = org.apache.kafka.common.utils.Utils.loadProps(args[0]);
        for (int i = 1; i < args.length; i++) {
            StringBuilder out = new StringBuilder();
            props.getProperty(args[i]).codePoints().forEach(c -> out.append(c).append(' '));
            System.out.println(out.toString().trim());
        }
    }
}
"""


def test_a_property_value_is_escaped_as_java_properties_reads_it() -> None:
    assert property_value(AWKWARD) == (
        "/home/\\u0645\\u062D\\u0645\\u062F/\\uD83D\\uDE00/a b\\:c\\=d\\#e\\!f\\\\g"
    )
    # A leading space would be taken for the space around the separator.
    assert property_value(" x y") == "\\ x y"
    assert property_value("/plain/path-1.2_3") == "/plain/path-1.2_3"


def test_server_properties_are_ascii_whatever_the_state_dirs_path(tmp_path: Path) -> None:
    home = tmp_path / "مستخدم"
    listener = TlsListener(20094, home / "keystore.pem", home / "ca.pem")
    text = server_properties(20092, 20093, home / "data", listener)

    assert text.isascii()
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["log.dirs"] == property_value(str(home / "data"))
    assert props["ssl.keystore.location"] == property_value(str(home / "keystore.pem"))
    assert props["ssl.truststore.location"] == property_value(str(home / "ca.pem"))


def test_kafka_reads_back_the_paths_written(tmp_path: Path) -> None:
    cache = Path(os.environ.get("TAWASUL_CACHE_DIR") or Path.home() / ".cache" / "tawasul")
    lib = install.kafka_lib(cache)
    java = shutil.which("java")
    if java is None or not any(lib.glob("kafka-clients-*.jar")):
        pytest.skip("needs java and Kafka's jars (tawasul-stack up fetches them)")
    home = Path(AWKWARD)
    listener = TlsListener(20094, home / "keystore.pem", home / "ca.pem")
    props = tmp_path / "server.properties"
    props.write_text(server_properties(20092, 20093, home / "data", listener))
    source = tmp_path / "ReadBack.java"
    source.write_text(READ_BACK)
    names = ["log.dirs", "ssl.keystore.location", "ssl.truststore.location"]

    done = subprocess.run(
        [java, "-cp", f"{lib}/*", str(source), str(props), *names],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    read = ["".join(chr(int(c)) for c in line.split()) for line in done.stdout.splitlines()]
    assert read == [str(home / "data"), str(home / "keystore.pem"), str(home / "ca.pem")]
