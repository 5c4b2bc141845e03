"""A zone's content as DNS records, for every renderer (transfers, zone files). Pure."""
