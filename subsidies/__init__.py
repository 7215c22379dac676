"""The subsidy fund, need assessment and the water-filling allocation of awards."""
