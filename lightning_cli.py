"""Run imgcls from a checkout: ``python lightning_cli.py fit --config configs/eurosat_resnet50.yaml``."""

from imgcls.commands import main

if __name__ == "__main__":
    main()
