"""Texts of the settings panel: policy and init choices and every control's tooltip."""

from __future__ import annotations

from inspector.model.settings import SAFE_MIN_SQNR

from .util import TIMES

# policy -> (combo text, tooltip of the value)
POLICIES: dict[str, tuple[str, str]] = {
    "std": (
        f"q {TIMES} std",
        "Quality parameter q: prune |w| ≤ q·std, the std of the layer's weights (Han et al.'s "
        "rule; q is found per layer by a sensitivity sweep).",
    ),
    "sparsity": (
        "target sparsity",
        "Fraction of the layer's weights to prune, smallest magnitudes first (the paper keeps "
        "~8% of LeNet's fc weights: sparsity 0.92).",
    ),
    "threshold": ("absolute threshold", "Prune every weight with |w| ≤ t."),
}
INITS: dict[str, str] = {
    "optimal": "optimal (default)",
    "linear": "linear (paper)",
    "density": "density",
    "random": "random",
}
BITS_TIP = (
    "Cluster bits b: k-means shares the surviving weights among K = 2^b centroids; each weight "
    "is stored as a b-bit index into the codebook.\nPaper: conv 8, fc 5 bits; conv accuracy "
    "falls below 4 bits, fc only at 2."
)
INDEX_TIP = (
    "Index bits b: a survivor's position is stored as the gap to the previous one, coded as "
    "gap-1 in b bits; a gap above 2^b inserts filler entries with weight zero.\nPaper text: "
    "8 bits for conv, 5 for fc."
)
TIPS: dict[str, str] = {  # space-separated attribute names -> tooltip
    "policy_combo": (
        "How the pruning threshold is chosen. Pruning removes the connections whose |w| is "
        "below a threshold; the survivors are stored sparsely.\n"
        f"q {TIMES} std: threshold = q * the std of the layer's weights (Han et al.).\n"
        "target sparsity: prune this fraction of the weights.\n"
        "absolute threshold: prune |w| ≤ t."
    ),
    "bits_slider bits_spin clusters_label": BITS_TIP,
    "init_combo": (
        "How the codebook's centroids are found.\noptimal: exact 1-D k-means (dynamic "
        "programming), never worse than the others.\nlinear: evenly spaced between min and "
        "max, the paper's best Lloyd start; after pruning some centroids land in the empty "
        "hole around zero and die.\ndensity: evenly spaced on the CDF.\nrandom: Forgy."
    ),
    "index_spin index_info": INDEX_TIP,
    "huffman_check": (
        "Huffman-code the weight-index and gap streams (the paper's last stage saves 20-30% "
        "more); a stream keeps fixed-width codes when they are smaller."
    ),
    "exclude_check": (
        "Keep this layer's weights as they are (no pruning, no quantization): for a "
        "sensitive layer such as the first conv layer."
    ),
    "paper_button": (
        "Deep Compression's bits for every layer: conv 8 cluster / 8 index bits, fc 5 / 5. "
        "Prune settings are kept."
    ),
    "prune90_button": (
        "The paper's pruning: 90% of the selected layers' weights (target sparsity 0.9), with "
        "no fidelity floor. Without retraining this usually breaks the model (SQNR ~3 dB: "
        "LeNet-300-100 falls to 31%, a sentence transformer's embeddings to cosine 0.14); "
        "fine-tune afterwards (Tune > Fine-Tune)."
    ),
    "safe_button": (
        f"The safe default for the selected layers: prune each only as far as keeps its "
        f"weight-space SQNR at or above {SAFE_MIN_SQNR:g} dB (more bits where the paper's are "
        "not enough). "
        "Measured: no accuracy lost on the LeNets, cosine 0.994 on a sentence transformer."
    ),
}
