"""The Space's tabs, one module each: its layout, its events and its first-visit view (`first_visit`, then
`build`). `common` holds what they share. All computation comes from `hub_models.space`."""
