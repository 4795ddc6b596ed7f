"""``tfidf`` — TF-IDF cosine of the pool's texts to the target's (vocabulary fitted on the pool)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mona.select.methods.base import Context, Scored, TargetMethod
from mona.select.methods.text import TextOptions, cosine_scores, require_texts, texts


class Tfidf(TargetMethod):
    name = "tfidf"
    summary = "TF-IDF cosine to the target's texts"
    Options = TextOptions
    target = "samples"
    needs_samples = True

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        from sklearn.feature_extraction.text import TfidfVectorizer

        require_texts(group, k, self.name)
        if "tfidf" not in ctx.cache:
            vec = TfidfVectorizer(sublinear_tf=True, dtype=np.float32)
            ctx.cache["tfidf"] = (vec, vec.fit_transform(texts(ctx.pool_samples)).tocsr())
        vec, X = ctx.cache["tfidf"]
        return cosine_scores(X, vec.transform(texts(group)).tocsr(), ctx.options.aggregate, group)
