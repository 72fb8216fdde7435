"""IHE XDS.b: the Document Registry (ITI-42, ITI-18) and Repository (ITI-41, ITI-43) on the bus.

``ebxml`` holds what every part shares: namespaces, the ebRIM UUIDs of ITI TF-3
4.2, statuses and the RegistryResponse/RegistryError builders.
"""
