"""Multi-seed studies with the papers' claims tested over seeds (``neurodeploy study``).

:mod:`.runs` trains/attacks/deploys one (recipe, seed); :mod:`.core` runs recipes × seeds and
writes study.json/md/png; :mod:`.stats` holds the paired tests and the verdict rule; :mod:`.claims`
the claims of HIRE-SNN and Luu et al. 2025; :mod:`.report` the tables and the figure;
:mod:`.presets` the named studies (``--preset digits``).
"""
from .claims import Claim, ClaimRow, Comparison, evaluate_claim, evaluate_claims, hire_claims, pooling_claims
from .core import Summary, markdown_table, run_study, summarize, write_study
from .presets import PRESETS, Preset, get_preset
from .runs import METRICS, RunResult, evaluate_run, network_tasa, result_from_dict, train_run
from .stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, PairedTest, mean_std, paired_test, verdict

__all__ = ["Claim", "ClaimRow", "Comparison", "INCONCLUSIVE", "METRICS", "NOT_REPRODUCED", "PRESETS", "PairedTest",
           "Preset", "REPRODUCED", "RunResult", "Summary", "evaluate_claim", "evaluate_claims", "evaluate_run",
           "get_preset", "hire_claims", "markdown_table", "mean_std", "network_tasa", "paired_test",
           "pooling_claims", "result_from_dict", "run_study", "summarize", "train_run", "verdict", "write_study"]
