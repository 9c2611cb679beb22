"""The facts each kind of model card shows, one module per kind (`vae`, `ddpm`, `latent_prior`, `classifier`,
`autoencoder`) and what they share (`common`). `hub_models.hub.kinds` names the builder of each kind and
`hub_models.hub.cards.render_model_card` renders it; nothing here knows which kind a folder is."""
