"""``python -m airflow_provider_mediapocket.testing``: see :func:`.dag_test.main`."""

import sys

from airflow_provider_mediapocket.testing.dag_test import main

sys.exit(main())
