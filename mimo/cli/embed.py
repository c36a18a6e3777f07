"""`mimo embed build` and `mimo score`: featurize a dataset into the cache; zero-shot scores."""
from __future__ import annotations

import click

from mimo.pipeline.writes import write_csv

from mimo.pipeline.featurizers import FEATURIZERS
from mimo.cli._common import (CACHE_OPTION, DataError, add_options, attach_structure, dataset_options, ensure_writable,
                      load_dataset, main, reports_data_errors, structure_options)


@main.group()
def embed() -> None:
    """Build the embedding cache."""


DEFAULT_ESM = "esm2_t33_650M_UR50D"
FILE_MODELS = ("profile:PATH (a per-site profile: ProteinMPNN .npz, an (L, 20|21) .npy, a CSV/TSV table, or an MSA "
               "in A2M/A3M/aligned FASTA, query first), profile:MODEL[:METHOD] (the parent's per-site profile computed "
               "once by a language model and kept in $MIMO_HOME/profiles: a UniRep name, next residue given the "
               "left context; an ESM name, or with --weights a checkpoint, :wt unmasked (default) or :masked each site "
               "masked), scores:PATH[:COL,...] (numeric columns of a variant scores "
               "file joined on a sequence column or a mutation column, named as the dataset's (mutated_sequence, "
               "sequence, mutant, variant, mutation(s), or --sequence-col/--mutant-col), e.g. ProteinGym's zero-shot "
               "files; label columns such as score or DMS_score are never features)")
file_options = add_options([
    click.option("--profile-offset", type=int, default=0, show_default=True,
                 help="profile: the profile's position 1 is the parent's position 1 + N."),
    click.option("--profile-alphabet", default=None,
                 help="profile: the letters of a matrix's columns (default: ACDEFGHIKLMNPQRSTVWY for 20 columns, "
                 "ACDEFGHIKLMNPQRSTVWYX for 21)."),
    click.option("--profile-columns", type=click.Choice(["all", "scalars"]), default="all", show_default=True,
                 help="profile: all (dlogp, entropy, wt_logp, mt_logp, the site's 20 probabilities p_A..p_Y, covered; "
                 "named profile-<stem>) or scalars (without p_*; profile-<stem>-scalars: measured better for ridge)."),
    click.option("--allow-missing", is_flag=True,
                 help="scores: variants the file lacks get zeros and covered = 0 (no signal) instead of an error."),
])


def _profile_weights(model: str | None, weights: str | None) -> tuple[str | None, str | None]:
    """``--model profile:ESM[:METHOD] --weights FILE.pt`` as one spec; otherwise --model or --weights, not both."""
    if model is not None and weights is not None:
        if model.startswith("profile:"):
            from mimo.pipeline.featurizers.lm_profile import spec_with_weights

            return spec_with_weights(model, weights), None
        raise DataError(f"give --model or --weights, not both (--model {model} --weights {weights})")
    return model, weights


@embed.command("build")
@dataset_options
@click.option("--model", default=None,
              help=f"A featurizer: {', '.join(FEATURIZERS)}, a fair-esm model name, a Hugging Face encoder (hub id "
              f"such as facebook/esm2_t33_650M_UR50D or Rostlab/prot_t5_xl_uniref50, or a save_pretrained directory; "
              f"pip install 'mimo-protein[hf]'), or {FILE_MODELS}.  [default: {DEFAULT_ESM}]")
@click.option("--weights", type=click.Path(), default=None,
              help="A fair-esm checkpoint file (.pt) instead of --model (with --model profile:ESM[:METHOD]: the model "
              "whose profile is computed).")
@click.option("--layer", type=int, default=None, help="Representation layer (default: the last; negative counts back).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Model precision (auto: bfloat16 on GPUs and on CPUs with native bf16, "
              "else float32).")
@click.option("--engine", type=click.Choice(["fast", "fair-esm", "compiled"]), default="fast", show_default=True,
              help="fast: our ESM-2 forward (fused attention) over the same weights; fair-esm: its own forward; "
              "compiled: the fast forward under torch.compile, batches padded to a few fixed shapes (the first run "
              "compiles each shape; the code is kept on disk for later runs).")
@click.option("--toks-per-batch", type=click.IntRange(min=1), default=None,
              help="Token budget of one batch (default: 4096 on CPU, 32768 on GPU).")
@click.option("--truncate", is_flag=True,
              help="Embed the first 1,022 residues of longer sequences (with a warning) instead of refusing them.")
@file_options
@structure_options
@click.option("--flush-every", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Sequences per written part file: at most this much work is lost when a build is killed.")
@CACHE_OPTION
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def embed_build(model, weights, layer, device, dtype, engine, toks_per_batch, truncate, profile_offset,
                profile_alphabet, profile_columns, allow_missing, structure, chain, sites, flush_every, cache_root,
                quiet, **dataset_kwargs) -> None:
    """Embed every sequence of a dataset once into cache/<dataset>/<features>/ (resumable).

    Under torchrun (e.g. `torchrun --nproc_per_node=4 $(which mimo) embed build ...`) the work is split
    across the processes, one GPU each, and merged into one cache.
    """
    from mimo.pipeline.cache.build import build_cache
    from mimo.pipeline.featurizers import get_featurizer
    from mimo.pipeline.runtime.ranks import Ranks

    model, weights = _profile_weights(model, weights)
    dataset = load_dataset(cache_root=cache_root, **dataset_kwargs)
    if attach_structure(dataset, structure, chain, sites) and model is None and weights is None:
        model = "structure"
    ranks = Ranks.from_environment()
    try:
        featurizer = get_featurizer(weights or model or DEFAULT_ESM, dataset, device=ranks.device(device),
                                    layer=layer, dtype=dtype, engine=engine, toks_per_batch=toks_per_batch,
                                    truncate=truncate, profile_offset=profile_offset,
                                    profile_alphabet=profile_alphabet, profile_columns=profile_columns,
                                    allow_missing=allow_missing)
        report = build_cache(dataset, featurizer, cache_root, flush_every, progress=not quiet, ranks=ranks)
    finally:
        ranks.close()
    if ranks.is_main:
        rate = f" ({report.per_second:,.0f} seq/s)" if report.embedded else ""
        click.echo(f"{report.directory}: {report.total} sequences, {report.skipped} already cached, "
                   f"{report.embedded} embedded in {report.seconds:.1f}s{rate}")


@main.command("score")
@dataset_options
@click.option("--model", default=None, help=f"{', '.join(n.removesuffix('-llr') for n in FEATURIZERS if n.endswith('-llr'))}"
              f", a fair-esm model name, or {FILE_MODELS}.  [default: {DEFAULT_ESM}]")
@click.option("--weights", type=click.Path(), default=None,
              help="A fair-esm checkpoint file (.pt) instead of --model (with --model profile:ESM[:METHOD]: the model "
              "whose profile is computed).")
@click.option("--method", type=click.Choice(["masked-marginal", "wt-marginal", "mutant-marginal", "llr"]),
              default=None, help="ESM: masked-marginal (default), wt-marginal, mutant-marginal; UniRep: llr.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="ESM precision (auto: float32, as the scores are differences of log-probabilities).")
@click.option("--toks-per-batch", type=click.IntRange(min=1), default=None,
              help="Token budget of one batch (default: 4096 on CPU, 32768 on GPU).")
@file_options
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the scores as CSV.")
@CACHE_OPTION
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def score_cmd(model, weights, method, device, dtype, toks_per_batch, profile_offset, profile_alphabet,
              profile_columns, allow_missing, out, cache_root, quiet, **dataset_kwargs) -> None:
    """Zero-shot scores of every variant (no training), cached like embeddings; Spearman against the labels.

    The scores are cached as features named <model>-<method> (profile-<stem>, scores-<stem> for files): join them
    to others with + in `mimo fit`. A profile scores log p(mutant) - log p(wild type) summed over sites; a scores
    file its first column. Variants a file gives no signal (covered = 0) are left out of the Spearman.
    """
    from mimo.models.runs.evaluate import zero_shot_spearman
    from mimo.pipeline.cache.scoring import zero_shot_scores

    model, weights = _profile_weights(model, weights)
    if out:
        ensure_writable(out, "--out")
    dataset = load_dataset(cache_root=cache_root, **dataset_kwargs)
    table = zero_shot_scores(dataset, weights or model or DEFAULT_ESM, method, cache_root, progress=not quiet,
                             device=device, dtype=dtype, toks_per_batch=toks_per_batch, profile_offset=profile_offset,
                             profile_alphabet=profile_alphabet, profile_columns=profile_columns,
                             allow_missing=allow_missing)
    of = table.attrs.get("features") or (weights or model or DEFAULT_ESM)
    for line in zero_shot_spearman(table, dataset.name, source=of)["lines"]:
        click.echo(line)
    if out:
        write_csv(table, out)
        click.echo(f"{len(table)} scores written to {out}")
