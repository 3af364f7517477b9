"""inspector.gui"""
