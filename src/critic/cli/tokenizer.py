"""``critic tokenizer fit | encode | bench``: the C++ tokenizer from the command line."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from critic.data.readers import INPUT_FORMATS, read_texts
from critic.data.sample import sample_path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tokenizer",
        help="fit, apply and benchmark the Keras-compatible C++ tokenizer",
        description="Fit, apply and benchmark critic's Keras-compatible C++ tokenizer.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    fit = sub.add_parser(
        "fit",
        help="fit a tokenizer on corpus files and write Keras-compatible JSON",
        description="Fit a tokenizer (Keras legacy Tokenizer semantics) on one or more corpus "
        "files and write its JSON, loadable by critic and by Keras' tokenizer_from_json.",
    )
    _add_input_args(fit)
    fit.add_argument(
        "--num-words",
        type=int,
        default=20000,
        help="keep words whose index is below this",
    )
    fit.add_argument(
        "--oov-token",
        default="<OOV>",
        help="token for unknown words, index 1; '' for none",
    )
    fit.add_argument("--no-lower", action="store_true", help="do not lower-case text")
    fit.add_argument("--char-level", action="store_true", help="one token per character")
    fit.add_argument("--out", type=Path, required=True, help="where to write the tokenizer JSON")
    fit.set_defaults(run=_fit)

    enc = sub.add_parser(
        "encode",
        help="turn texts into a padded int32 id matrix (.npy)",
        description="Tokenize, look up and pad texts with a fitted tokenizer JSON; writes a "
        "[rows, maxlen] int32 .npy file.",
    )
    _add_input_args(enc)
    enc.add_argument(
        "--tokenizer",
        type=Path,
        required=True,
        help="tokenizer JSON (from critic or from Keras' to_json)",
    )
    enc.add_argument("--maxlen", type=int, default=500, help="row width")
    enc.add_argument(
        "--padding", choices=("pre", "post"), default="pre", help="which side the zeros go"
    )
    enc.add_argument(
        "--truncating", choices=("pre", "post"), default="pre", help="which side a long row loses"
    )
    enc.add_argument("--threads", type=int, default=None, help="default: all cores")
    enc.add_argument("--out", type=Path, required=True, help="output .npy file")
    enc.set_defaults(run=_encode)

    bench = sub.add_parser(
        "bench",
        help="compare critic's tokenizer with Keras (identical ids, texts/s)",
        description="Fit on the train texts and encode the test texts with Keras and with "
        "critic, check the ids are identical, and print texts/s (median of --repeat runs). "
        "Uses the shipped IMDB sample unless --train/--test are given. Needs TensorFlow.",
    )
    bench.add_argument("--train", type=Path, help="corpus to fit on (default: shipped sample)")
    bench.add_argument("--test", type=Path, help="corpus to encode (default: shipped sample)")
    bench.add_argument("--text-column", default="text", help="column/field holding the text")
    bench.add_argument("--num-words", type=int, default=20000, help="vocabulary size")
    bench.add_argument("--oov-token", default="<OOV>", help="token for unknown words")
    bench.add_argument("--maxlen", type=int, default=500, help="row width")
    bench.add_argument("--repeat", type=int, default=5, help="runs per measurement")
    bench.set_defaults(run=_bench)


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="corpus files (" + ", ".join(INPUT_FORMATS) + ")"
    )
    parser.add_argument("--text-column", default="text", help="column/field holding the text")
    parser.add_argument(
        "--format", choices=INPUT_FORMATS, help="input format (default: from the name)"
    )


def _read_all(args: argparse.Namespace) -> list[str]:
    texts: list[str] = []
    for path in args.inputs:
        texts.extend(read_texts(path, args.text_column, args.format))
    return texts


def _fit(args: argparse.Namespace) -> int:
    from critic.kernels import Tokenizer

    texts = _read_all(args)
    tok = Tokenizer(
        num_words=args.num_words or None,
        oov_token=args.oov_token or None,
        lower=not args.no_lower,
        char_level=args.char_level,
    )
    start = time.perf_counter()
    tok.fit_on_texts(texts)
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(tok.to_json(), encoding="utf-8")
    print(
        f"fitted on {len(texts):,} texts in {seconds:.2f}s: {len(tok.word_index):,} distinct "
        f"words, keeping ids < {args.num_words}; wrote {args.out}"
    )
    return 0


def _encode(args: argparse.Namespace) -> int:
    from critic.kernels import Tokenizer

    tok = Tokenizer.from_json(args.tokenizer.read_text(encoding="utf-8"))
    texts = _read_all(args)
    start = time.perf_counter()
    ids = tok.encode(
        texts,
        maxlen=args.maxlen,
        padding=args.padding,
        truncating=args.truncating,
        threads=args.threads,
    )
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, ids)
    print(
        f"encoded {len(texts):,} texts -> {ids.shape} {ids.dtype} in {seconds:.3f}s "
        f"({len(texts) / max(seconds, 1e-9):,.0f} texts/s); wrote {args.out}"
    )
    return 0


def median_seconds(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls of fn, and fn's last result."""
    times, result = [], None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _bench(args: argparse.Namespace) -> int:
    from critic import console

    try:
        console.quiet_import("tensorflow")  # TensorFlow's start-up lines stay off the screen
        import tensorflow as tf
    except ImportError as e:
        raise ValueError("the comparison needs TensorFlow: pip install 'critic[train]'") from e
    from critic.kernels import Tokenizer, default_threads

    train = read_texts(args.train or sample_path("train"), args.text_column)
    test = read_texts(args.test or sample_path("test"), args.text_column)
    options = {"num_words": args.num_words, "oov_token": args.oov_token or None}
    keras_text = tf.keras.preprocessing.text
    keras_pad = tf.keras.utils.pad_sequences

    def keras_fit():
        t = keras_text.Tokenizer(**options)
        t.fit_on_texts(train)
        return t

    def critic_fit():
        t = Tokenizer(**options)
        t.fit_on_texts(train)
        return t

    keras_fit_s, ktok = median_seconds(keras_fit, args.repeat)
    critic_fit_s, ctok = median_seconds(critic_fit, args.repeat)
    if ctok.word_index != ktok.word_index:
        raise ValueError("critic and Keras disagree on word_index")
    keras_enc_s, expected = median_seconds(
        lambda: keras_pad(ktok.texts_to_sequences(test), maxlen=args.maxlen), args.repeat
    )
    rows = [("Keras texts_to_sequences + pad_sequences", keras_enc_s)]
    for threads in sorted({1, default_threads()}):
        secs, got = median_seconds(
            lambda threads=threads: ctok.encode(test, maxlen=args.maxlen, threads=threads),
            args.repeat,
        )
        if not np.array_equal(got, expected):
            raise ValueError(f"critic encode ({threads} threads) differs from Keras")
        rows.append((f"critic encode, {threads} thread{'s' * (threads > 1)}", secs))

    print(
        f"fit on {len(train):,} texts: Keras {keras_fit_s:.3f}s, critic {critic_fit_s:.3f}s "
        f"({keras_fit_s / critic_fit_s:.1f}x); identical word_index"
    )
    print(
        f"encode {len(test):,} texts to [n, {args.maxlen}] (ids identical to Keras), "
        f"median of {args.repeat}:"
    )
    print(f"  {'method':<44} {'texts/s':>12} {'vs Keras':>9}")
    for name, secs in rows:
        print(f"  {name:<44} {len(test) / secs:>12,.0f} {keras_enc_s / secs:>8.1f}x")
    return 0
