"""The re-ranking meta-model: training examples, the MLlib model, evaluation, recommendations, report."""
