"""LoRA fine-tuning for SD1.x, SDXL and FLUX, built on peft and accelerate."""
