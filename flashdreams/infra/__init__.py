"""Infrastructure shared by flashdreams components: configs and decoder interfaces."""
