"""``genimg txt2img``: images from a text prompt."""

from __future__ import annotations

from genimg.cli import options as o


def txt2img(
    prompt: o.Prompt,
    negative: o.Negative = "",
    model: o.Model = None,
    width: o.Width = None,
    height: o.Height = None,
    steps: o.Steps = None,
    cfg: o.Cfg = None,
    seed: o.Seed = None,
    count: o.Count = 1,
    batch_size: o.BatchSize = 1,
    scheduler: o.Scheduler = None,
    max_sequence_length: o.MaxSeqLen = None,
    config: o.Config = None,
    allow_pickle: o.AllowPickle = False,
    preset: o.PresetName = "auto",
    device: o.Device = None,
    dtype: o.Dtype = None,
    offload: o.Offload = None,
    compile: o.Compile = None,
    quantize: o.Quantize = None,
    attention_slicing: o.AttentionSlicing = None,
    vae_slicing: o.VaeSlicing = None,
    vae_tiling: o.VaeTiling = None,
    channels_last: o.ChannelsLast = None,
    vae_fp32: o.VaeFp32 = None,
    output: o.Output = None,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Generate images from a text prompt."""
    from genimg.cli.generating import generate_and_report
    from genimg.spec import GenerationSpec

    spec = GenerationSpec(
        prompt=prompt, negative=negative, model=model, width=width, height=height, steps=steps, guidance=cfg,
        scheduler=scheduler, seed=seed, count=count, batch_size=batch_size, preset=preset,
        preset_overrides=o.preset_overrides(device=device, dtype=dtype, offload=offload, compile=compile,
                                            quantize=quantize, attention_slicing=attention_slicing,
                                            vae_slicing=vae_slicing, vae_tiling=vae_tiling,
                                            channels_last=channels_last, vae_fp32=vae_fp32),
        model_config=str(config) if config else None, allow_pickle=allow_pickle,
        max_sequence_length=max_sequence_length,
    )
    generate_and_report(spec, output, overwrite, json, quiet)
