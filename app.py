"""Home page: pick a dataset, see what it holds and what has been evaluated."""

import pandas as pd
import streamlit as st

from core import data
from core.evaluate import load_results

st.set_page_config(page_title="LLM Sequential Recommendation", layout="wide")
st.title("LLM-enhanced sequential recommendation")
st.caption("Boz et al., *Improving Sequential Recommendations with LLMs* (arXiv 2402.01339)")


@st.cache_resource(show_spinner="Loading the dataset…")
def load_dataset(name: str) -> data.Dataset:
    return data.load(name)


name = st.selectbox("Dataset", list(data.BUNDLED), format_func=lambda n: f"{n} — {data.BUNDLED[n]}")
try:
    dataset = load_dataset(name)
except data.DataError as err:
    st.error(str(err))
    st.stop()
split = dataset.split
cols = st.columns(4)
cols[0].metric("Items", f"{dataset.catalog.n_items:,}")
cols[1].metric("Train sessions", f"{len(split.train):,}")
cols[2].metric("Test sessions", f"{split.n_test:,}")
cols[3].metric("Validation folds", len(dataset.folds))

results = load_results(name)
if results:
    st.subheader("Evaluated models")
    table = pd.DataFrame({m: {k: r[k] for k in ("NDCG@20", "HR@20", "MRR@20", "Coverage@20")}
                          for m, r in results.items()}).T
    st.dataframe(table.style.format("{:.4f}"))
else:
    st.info(f"No evaluation results yet: run `python -m core evaluate --dataset {name}`.")
