"""The recorder process's shell, in process: what it does when the disk fails."""

from __future__ import annotations

import os

import pytest

from tests.conftest import free_base_port
from workers.record import RecordConfig, Recorder
from workers.transport import Endpoint


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_write_error_stops_the_recording_so_the_file_stays_readable_up_to_it(tmp_path, caplog):
    recorder = Recorder(RecordConfig(Endpoint("127.0.0.1", free_base_port()), tmp_path / "a.rec"))
    recorder.writer.flush()
    good = (tmp_path / "a.rec").read_bytes()
    recorder.writer._file.close()
    recorder.writer._file = open("/dev/full", "wb")        # every write: ENOSPC
    recorder.writer.write_event(0.0, {"type": "host"})          # buffered: fails at the flush
    recorder.on_timer()
    assert isinstance(recorder.failed, OSError)
    assert "cannot write" in caplog.text and "recording stopped" in caplog.text
    recorder.close()
    assert (tmp_path / "a.rec").read_bytes() == good
    assert recorder.writer._file.closed
