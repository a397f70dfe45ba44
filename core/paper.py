"""The paper's published Beauty figures (Boz et al. 2024, arXiv 2402.01339), for comparison only.

Amazon Beauty, @20, as quoted in this project's issues; OpenAI ada-002 embeddings, the authors' runs. Only the
figures we have are listed: a missing metric is missing, not zero. They are never produced by this code. Kept
apart from ``core.report`` so that the CLI (``reproduce``) does not need plotly.
"""

PAPER_BEAUTY: dict[str, dict[str, float]] = {
    "popularity": {"NDCG@20": 0.0064},
    "vsknn": {"NDCG@20": 0.0475, "HR@20": 0.0947},
    "llmseqsim": {"NDCG@20": 0.0480, "HR@20": 0.0792},
    "llmseqprompt": {"NDCG@20": 0.0295, "HR@20": 0.0691, "Coverage@20": 0.66},
    "gru4rec": {"NDCG@20": 0.0338, "HR@20": 0.0812},
    "sasrec": {"NDCG@20": 0.0346, "HR@20": 0.0808},
    "bert4rec": {"NDCG@20": 0.0430, "HR@20": 0.1027},
    "llm2bert4rec": {"NDCG@20": 0.0512, "HR@20": 0.1177},
    # the extended paper's hybrids (their best settings on Beauty)
    "embedding_ensemble": {"NDCG@20": 0.049, "HR@20": 0.090},
    "llmseqsim_sequential": {"NDCG@20": 0.050, "HR@20": 0.116},
    "llmseqsim_popularity": {"NDCG@20": 0.049, "HR@20": 0.093},
}
PAPER_LABEL = "paper (Boz et al. 2024)"
