"""Small widgets any feature may use: plain-text helpers, safe markdown, chips, layouts."""
