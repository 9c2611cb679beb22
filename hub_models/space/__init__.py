"""What the Space computes and how it is published, one module per concern: where the models come from and how
they load (`sources`), the loaded models (`registry`), checks of incoming values (`checks`), the latent explorer and
the VAE grid (`latent`), `reconstruct`, `interpolate`, DDPM streaming (`diffusion`), `completion`, input
preprocessing (`preprocess`), the About tab (`about`) and the Space folder put on the Hub (`publish`). The tabs'
layout and events are in spaces_app/tabs/, one module per tab."""
