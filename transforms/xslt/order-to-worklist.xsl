<?xml version="1.0" encoding="UTF-8"?>
<!-- Turns an order (xsd/order.xsd) into a worklist item for a modality station. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:param name="station" select="'ANY'"/>
  <xsl:output method="xml" encoding="UTF-8" indent="no"/>
  <xsl:template match="/order">
    <worklist-item station="{$station}" order="{@id}" priority="{@priority}">
      <patient id="{patient/@id}" authority="{patient/@authority}"/>
      <modality><xsl:value-of select="modality"/></modality>
      <procedure><xsl:value-of select="procedure"/></procedure>
    </worklist-item>
  </xsl:template>
</xsl:stylesheet>
