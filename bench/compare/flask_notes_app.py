"""flask_notes_app.py: the notes' two flask programs in one app, the Python peer of `concur serve`
in issue 15's benchmarks (bench/compare/run_serve_bench.sh), served by Debian's gunicorn 20.1:

    gunicorn -k gthread --threads 100 -b 127.0.0.1:PORT --chdir bench/compare flask_notes_app:app
    gunicorn --workers 2 -b 127.0.0.1:PORT --chdir bench/compare flask_notes_app:app

Routes, as the notes write them:
  /                   "线程池在web服务中实现加速": read_file (0.1 s), read_db (0.2 s) and read_api
                      (0.3 s) submitted to a global ThreadPoolExecutor, answered with json.dumps
                      once all three are back (0.3 s a page).
  /serial             the same three reads one after another (0.6 s a page): the view before the
                      pool, as `concur serve`'s /serial (`concur bench serve_fanout` compares them).
  /is_prime/<numbers> "在flask服务中使用进程池加速": process_pool.map(is_prime, number_list),
                      answered with json.dumps(dict(zip(number_list, results))).
  /hello              json.dumps({"hello": "world"}) (application/json), the same body as
                      `concur serve`'s /hello.

Two changes from the notes, both forced by gunicorn: the notes create process_pool under
`if __name__ == "__main__"`, which never runs under gunicorn, so each gunicorn worker creates its
own ProcessPoolExecutor lazily on its first /is_prime (after the fork from gunicorn's master, so
the pool's processes are the worker's children and its management thread lives in the worker;
creating it before the fork, in the master, would leave every worker a pool whose thread is
gone). And the two pools' sizes come from the environment so a benchmark can state them:
POOL_THREADS (the notes' ThreadPoolExecutor(): default min(32, cpu + 4)) and POOL_PROCESSES (the
notes' ProcessPoolExecutor(): default one per CPU). Responses are text/html as the notes' views
return a str, except /hello (application/json, as concur's).
"""
import json
import math
import os
import threading
import time as tm
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import flask

app = flask.Flask(__name__)


def _env_int(name):
    value = os.environ.get(name, "")
    return int(value) if value else None


pool = ThreadPoolExecutor(max_workers=_env_int("POOL_THREADS"))
_sleep_scale = float(os.environ.get("SLEEP_SCALE", "") or 1)


def read_file():
    tm.sleep(0.1 * _sleep_scale)
    return "file result"


def read_db():
    tm.sleep(0.2 * _sleep_scale)
    return "db result"


def read_api():
    tm.sleep(0.3 * _sleep_scale)
    return "api result"


@app.route("/")
def index():
    result_file = pool.submit(read_file)
    result_db = pool.submit(read_db)
    result_api = pool.submit(read_api)
    return json.dumps({
        "result_file": result_file.result(),
        "result_db": result_db.result(),
        "result_api": result_api.result(),
    })


@app.route("/serial")
def serial():
    return json.dumps({
        "result_file": read_file(),
        "result_db": read_db(),
        "result_api": read_api(),
    })


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    sqrt_n = int(math.floor(math.sqrt(n)))
    for i in range(3, sqrt_n + 1, 2):
        if n % i == 0:
            return False
    return True


_process_pool = None
_process_pool_lock = threading.Lock()


def process_pool():
    """The worker's ProcessPoolExecutor, created on first use (after gunicorn's fork)."""
    global _process_pool
    with _process_pool_lock:
        if _process_pool is None:
            _process_pool = ProcessPoolExecutor(max_workers=_env_int("POOL_PROCESSES"))
        return _process_pool


@app.route("/is_prime/<numbers>")
def api_is_prime(numbers):
    number_list = [int(x) for x in numbers.split(",")]
    results = process_pool().map(is_prime, number_list)
    return json.dumps(dict(zip(number_list, results)))


@app.route("/hello")
def hello():
    return flask.Response(json.dumps({"hello": "world"}), mimetype="application/json")


if __name__ == "__main__":
    app.run()
