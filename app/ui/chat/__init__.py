"""The chat feature: transcript, composer, sidebar and the controller that runs a conversation."""
