"""Small, reusable building blocks for OpenGL + Dear ImGui tools (nothing StyleGAN-specific):
a window with an ImGui context, textures that draw pixel-exact, large centred text, widget helpers
and layout arithmetic. Importing the package itself needs no GUI library; its modules do (except
`layout`)."""
