"""Configs: every config gets its own copies of the catalogue's model entries."""
from configs import mahaut_baroni, raghu


def test_changing_one_config_leaves_the_catalogue_and_later_configs_alone():
  tokens = raghu.get_config("tokens")  # sets pooling="tokens" on each of its entries
  assert all(m.pooling == "tokens" for m in tokens.models)
  assert all(m.pooling is None for m in raghu.get_config("").models)
  local = raghu.get_config("runlocal,models=vit")
  local.models[0].update(tiny_random=False, checkpoint="/somewhere/else")
  again = raghu.get_config("runlocal")
  assert again.models[0].tiny_random and again.models[0].checkpoint is None
  paper = mahaut_baroni.get_config("dinov3")
  paper.models[0].pooling = "cls"
  assert mahaut_baroni.get_config("dinov3").models[0].pooling is None
  assert mahaut_baroni.CATALOGUE["dinov3_s"].pooling is None
