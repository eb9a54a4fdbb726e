"""One module per dataset family: its specifications (reader, official files, fake
layout for the tests), registered in order by ``bench.data.datasets``."""

from bench.data.families import (
    cifar,
    cifar10_c,
    digits,
    domainnet,
    flowers,
    folder,
    imagenet,
    pets,
)

# The order of the registry and of the docs' tables.
FAMILIES = (digits, cifar, cifar10_c, pets, flowers, domainnet, imagenet, folder)
