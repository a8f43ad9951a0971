"""The default embedder against scikit-learn's own pipeline, and its stored state."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.pipeline import make_pipeline

from featureledger.llm.embedding import FunctionEmbedder, HashingSVD, load_embedder

TEXTS = [
    "the cat sat on the mat",
    "a dog chased the cat",
    "engines and wheels make a car",
    "the car drove down the road",
    "kittens and cats purr",
    "dogs bark at cars",
] * 3


def test_embed_equals_the_plain_scikit_learn_pipeline() -> None:
    fitted = HashingSVD(dim=4, n_features=2**10).fit(TEXTS)
    # the reference: the whole pipeline on every hash bucket, no restriction to used ones
    reference = make_pipeline(
        HashingVectorizer(n_features=2**10, alternate_sign=False, norm=None),
        TfidfTransformer(sublinear_tf=True),
        TruncatedSVD(4, random_state=0, n_iter=5),
    ).fit(TEXTS)
    queries = ["the cat and the dog", "a car on the road", "nothing known here zzz"]
    want = reference.transform(queries)
    want /= np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    got = fitted.embed(queries)
    # SVD components are defined up to sign: compare |cosine| per dimension via projection
    signs = np.sign(np.sum(got * want, axis=0))
    signs[signs == 0] = 1
    np.testing.assert_allclose(got * signs, want, atol=1e-4)
    assert np.allclose(np.linalg.norm(got[:2], axis=1), 1.0, atol=1e-5)


def test_the_fitted_state_round_trips_with_its_hash() -> None:
    fitted = HashingSVD(dim=3, n_features=2**10).fit(TEXTS)
    again = load_embedder(fitted.dumps())
    assert again.hash == fitted.hash
    np.testing.assert_array_equal(again.embed(TEXTS[:3]), fitted.embed(TEXTS[:3]))
    # fitting on other text gives another function, so another hash
    assert HashingSVD(dim=3, n_features=2**10).fit(TEXTS[:4]).hash != fitted.hash
    assert HashingSVD(dim=3, n_features=2**10).fit(TEXTS).hash == fitted.hash


def _lengths(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), t.count(" ") + 1.0] for t in texts])


def test_a_user_function_is_pluggable_and_hashed_by_its_code() -> None:
    emb = FunctionEmbedder("lengths", _lengths, dim=2, version="1")
    fitted = emb.fit(TEXTS)
    assert fitted.embed(["ab c"]).shape == (1, 2)
    assert fitted.hash == FunctionEmbedder("lengths", _lengths, dim=2, version="1").hash
    assert fitted.hash != FunctionEmbedder("lengths", _lengths, dim=2, version="2").hash
    assert load_embedder(fitted.dumps()).hash == fitted.hash
