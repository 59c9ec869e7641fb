"""What the scenarios and the tests share: where the repository and its models are (paths), gunicorn on
127.0.0.1 (server), load drivers (load, wrk, h2load), raw HTTP (rawhttp), and the suite's sizes, models and
report. Imports nothing from tests/."""
