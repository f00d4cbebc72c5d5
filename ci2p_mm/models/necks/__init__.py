from .simple_pyramid import CI2PSimplePyramid

__all__ = ['CI2PSimplePyramid']
