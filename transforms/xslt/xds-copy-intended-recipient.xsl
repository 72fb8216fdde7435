<?xml version="1.0" encoding="UTF-8"?>
<!-- ITI-42 enrichment example: copy the SubmissionSet's intendedRecipient slot onto
     every DocumentEntry (as slot urn:esb:intendedRecipient), so a later stored query
     returns who each document was sent to. Everything else is copied unchanged. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <xsl:output method="xml" encoding="UTF-8"/>

  <!-- the SubmissionSet is the RegistryPackage classified as one -->
  <xsl:variable name="set-id"
      select="//rim:Classification[@classificationNode='urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd']/@classifiedObject"/>
  <xsl:variable name="recipients"
      select="//rim:RegistryPackage[@id=$set-id]/rim:Slot[@name='intendedRecipient']/rim:ValueList/rim:Value"/>

  <xsl:template match="@*|node()">
    <xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy>
  </xsl:template>

  <!-- slots come first in an ExtrinsicObject (ebRIM sequence): add ours after the last one.
       (XSLT 1.0 allows no variable in a match pattern, hence the xsl:if.) -->
  <xsl:template match="rim:ExtrinsicObject[not(rim:Slot[@name='urn:esb:intendedRecipient'])]">
    <xsl:copy>
      <xsl:apply-templates select="@*|rim:Slot"/>
      <xsl:if test="$recipients">
        <rim:Slot name="urn:esb:intendedRecipient">
          <rim:ValueList>
            <xsl:for-each select="$recipients"><rim:Value><xsl:value-of select="."/></rim:Value></xsl:for-each>
          </rim:ValueList>
        </rim:Slot>
      </xsl:if>
      <xsl:apply-templates select="node()[not(self::rim:Slot)]"/>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
